"""The HTTP service and dashboard (``taskloom serve``); needs the ``service`` extra.

Nothing here is imported by ``import workflow``: ``workflow.create_app`` imports it when
called, so FastAPI stays an optional dependency.

    _app.py        assembles the app: routers, middleware, error handlers, the dashboard
    _state.py      Service: workflows, knowledge base, engine, metrics, background runs
    _auth.py       API keys and roles as dependencies
    _routes_*.py   the endpoints (runs, review, models, keys)
    _schemas.py    what the endpoints return
    _events.py     run events behind the server-sent streams
    _errors.py     JSON errors
    _limits.py     the request-body limit
    _metrics.py    Prometheus metrics
    _jobs.py       fine-tuning rounds as child processes
    static/        the dashboard (plain ES modules; mermaid and Chart.js vendored)
"""
