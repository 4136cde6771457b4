"""The market monitor's knowledge-base work on SQLite and PostgreSQL alike: the history's
windows, exactly-once mentions, the deduplicated outbox (a savepoint on a unique key), the
digest notes, verdicts and the digest."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from market_monitor.alerts import AlertInput, AlertSender, DigestNote, NoteInput  # noqa: E402
from market_monitor.data import START  # noqa: E402
from market_monitor.digest import write_digest  # noqa: E402
from market_monitor.entities import Entity, store_entities  # noqa: E402
from market_monitor.history import HistoryInput, SentimentHistory  # noqa: E402
from market_monitor.outcomes import list_alerts, mark_alert  # noqa: E402
from market_monitor.tables import Mention, create_tables  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from agents import RunContext  # noqa: E402
from knowledge import Database, PredictionIn, record_predictions  # noqa: E402

ENTITIES = [
    Entity("TSLA", "Tesla", ("Tesla",), "Consumer Discretionary"),
    Entity("F", "Ford", ("Ford",), "Consumer Discretionary"),
]
T0 = START + 10 * 3_600  # a bucket boundary


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    with Database(database_url, auto_upgrade=True) as database:
        create_tables(database)
        store_entities(database, ENTITIES, source="test")
        yield database


def tweet(item: str, at: float, sentiment: str) -> HistoryInput:
    return HistoryInput(
        item_id=item, published_at=at, tickers=["TSLA"], sentiment=sentiment, confidence=0.9
    )


def test_history_alerts_and_digest_on_each_backend(db: Database) -> None:
    history = SentimentHistory()
    for i in range(5):  # five bearish tweets in the hour before the bucket
        ctx = RunContext(f"r{i}", "history", knowledge=db)
        history.run(tweet(f"t{i}", T0 - 3_000 + 600 * i, "bearish"), ctx)
    again = RunContext("r0", "history", knowledge=db)
    history.run(tweet("t0", T0 - 3_000, "bearish"), again)  # a replayed visit: no new rows
    now = history.run(tweet("t9", T0 + 60, "bullish"), RunContext("r9", "history", knowledge=db))
    assert (now.mentions, now.bearish, now.bullish, now.direction) == (6, 5, 1, "bearish")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Mention)) == 6

    with db.transaction() as session:
        said = record_predictions(
            session,
            [
                PredictionIn(
                    agent="alert_policy",
                    model_version="v1",
                    input={"text": "", "signals": {}},
                    output={},
                    label="hold",
                    label_set=["alert", "hold"],
                )
            ],
        )[0]
    sender = AlertSender()
    raised = [
        sender.run(
            AlertInput(
                item_id=f"t{9 + i}",
                published_at=T0 + 60 + i,
                text="$TSLA - falls",
                history=now,
                decided_by="model",
                prediction_id=said.id,
            ),
            RunContext(f"a{i}", "alert", knowledge=db),
        )
        for i in range(2)
    ]
    assert [r.duplicate for r in raised] == [False, True]
    assert raised[0].alert_id == raised[1].alert_id

    note = DigestNote()
    for run in ("n1", "n2"):  # the same tweet from two runs: one entry
        entry = NoteInput(
            item_id="t9",
            published_at=T0 + 60,
            text="$TSLA - falls https://t.co/x",
            sentiment="bearish",
            confidence=0.9,
            entity="TSLA",
            decision="alert",
            alert_id=raised[0].alert_id,
        )
        note.run(entry, RunContext(run, "note", knowledge=db))

    mark_alert(db, raised[0].alert_id, "useful", author="ana")
    assert [a.verdict for a in list_alerts(db)] == ["useful"]
    digest = write_digest(db, T0, T0 + 3_600)
    assert "1 tweets, 1 about a watched entity (1 entities); 1 alert(s) raised." in digest
    assert "Tesla alert" in digest
    assert "(useful; pending)" in digest
