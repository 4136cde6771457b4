"""``run_demo.py --serve PORT``: the demo's workflow and knowledge base behind the service.

After the rounds, the dashboard shows what the demo did: its runs with their traces, the
review items the simulated reviewer left open, and the intent model's versions with their
metrics. Two keys are created for it (admin and labeler) and printed once.
"""

from __future__ import annotations

from knowledge import Database, create_api_key
from workflow import CompiledWorkflow, ServiceConfig

__all__ = ["serve"]


def serve(database: Database, workflow: CompiledWorkflow, port: int) -> int:
    """Serve ``workflow`` over ``database`` on 127.0.0.1:``port`` until interrupted."""
    try:
        import uvicorn  # noqa: PLC0415 - the service extra, only for --serve

        from workflow import create_app  # noqa: PLC0415
    except ImportError:
        print("error: --serve needs the service extra: pip install -e '.[service]'")
        return 2
    with database.transaction() as session:
        tokens = {
            role: create_api_key(session, f"demo-{role}", role, created_by="run_demo")[1]
            for role in ("admin", "labeler")
        }
    print(f"\nDashboard: http://127.0.0.1:{port}/ui/  (Ctrl-C stops it)")
    for role, token in tokens.items():
        print(f"  {role:8} key: {token}")
    app = create_app([workflow], database=database, config=ServiceConfig(resume_on_start=False))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    return 0
