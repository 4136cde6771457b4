"""The testing kit: the conformance checks, and the scripted fake agents."""

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from agents import Agent, AgentContractError, Role, RunContext
from agents.testing import (
    AgentContractTests,
    AsyncFakeAgent,
    FakeAgent,
    FakeInput,
    FakeOutput,
    JoinAgent,
    JoinInput,
    check_agent,
)

SAMPLES = [{"text": "a"}, {"text": "b", "n": 2}]


class Words(BaseModel):
    text: str


class Tokens(BaseModel):
    tokens: list[str]


class Tokenizer(Agent[Words, Tokens]):
    """Plugin-like: serializable params, a ``warm_up`` that loads once, its own batch path."""

    name = "tokenizer"
    role = Role.PERCEPTION

    def __init__(self, *, lower: bool = True, stopwords: Sequence[str] = ()) -> None:
        self.lower, self.stopwords = lower, frozenset(stopwords)
        self.vocab: dict[str, int] | None = None

    def warm_up(self) -> None:
        if self.vocab is None:
            self.vocab = {"the": 0}

    def run(self, input: Words, ctx: RunContext) -> Tokens:
        return self.run_batch([input], [ctx])[0]

    def run_batch(self, inputs: Sequence[Words], ctxs: Sequence[RunContext]) -> list[Tokens]:
        texts = [i.text.lower() if self.lower else i.text for i in inputs]
        return [Tokens(tokens=[w for w in t.split() if w not in self.stopwords]) for t in texts]


class AsyncTokenizer(Agent[Words, Tokens]):
    """Plugin-like with ``async def run`` and the default (gathering) ``run_batch``."""

    name = "async_tokenizer"
    role = Role.PERCEPTION

    def __init__(self, *, sep: str | None = None) -> None:
        self.sep = sep

    async def run(self, input: Words, ctx: RunContext) -> Tokens:
        await asyncio.sleep(0)
        return Tokens(tokens=input.text.split(self.sep))


WORDS = [{"text": "The cat sat"}, {"text": "on the mat"}]


def _breaks(agent: Agent[Any, Any], samples: Sequence[Any] = WORDS) -> AgentContractError:
    with pytest.raises(AgentContractError) as caught:
        check_agent(agent, samples)
    return caught.value


# ----------------------------------------------------------------------------- check_agent


@pytest.mark.parametrize(
    ("agent", "samples"),
    [
        (FakeAgent(), SAMPLES),
        (FakeAgent(label="x", score=0.25, echo=True, journal=[]), SAMPLES),
        (AsyncFakeAgent(label="y"), SAMPLES),
        (JoinAgent(), [{"texts": ["a", "b"]}, {}]),
        (Tokenizer(stopwords=["the"]), WORDS),
        (AsyncTokenizer(sep=" "), WORDS),
    ],
    ids=["fake", "fake-echo-journal", "async-fake", "join", "tokenizer", "async-tokenizer"],
)
def test_check_agent_passes_conforming_agents(agent: Agent[Any, Any], samples: Any) -> None:
    check_agent(agent, samples)


def test_check_agent_needs_samples() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        check_agent(FakeAgent(), [])


def test_class_problems_fail_first() -> None:
    class Roleless(Tokenizer):
        role = "perception"  # type: ignore[assignment]  # the string, not Role.PERCEPTION

    error = _breaks(Roleless())
    assert error.problems == [
        "role must be one of Role.PERCEPTION, Role.REASONING, Role.DECISION, Role.EXECUTION; "
        "got 'perception'"
    ]


def test_a_non_serializable_init_param_fails() -> None:
    class Hooked(Tokenizer):
        name = "hooked"

        def __init__(self, *, on_done: Any = None) -> None:
            super().__init__()
            self.on_done = on_done

    error = _breaks(Hooked(on_done=print))
    assert error.problems == [
        "init parameters must be JSON-serializable: "
        "Object of type builtin_function_or_method is not JSON serializable"
    ]


def test_params_that_cannot_be_rebuilt_from_json_fail() -> None:
    class NeedsTuple(Tokenizer):
        name = "needs_tuple"

        def __init__(self, *, stopwords: tuple[str, ...] = ()) -> None:
            if not isinstance(stopwords, tuple):
                raise TypeError(f"stopwords must be a tuple, got {type(stopwords).__name__}")
            super().__init__(stopwords=stopwords)

    error = _breaks(NeedsTuple(stopwords=("a",)))
    assert error.problems == [
        'cannot be rebuilt from its saved parameters {"stopwords": ["a"]}: '
        "TypeError: stopwords must be a tuple, got list"
    ]
    assert isinstance(error.__cause__, TypeError)


def test_params_that_change_when_rebuilt_fail() -> None:
    class Appends(Tokenizer):
        name = "appends"

        def __init__(self, *, stopwords: list[str]) -> None:
            stopwords.append("the")  # mutates its argument, and so its recorded params
            super().__init__(stopwords=stopwords)

    error = _breaks(Appends(stopwords=["a"]))
    assert error.problems == [
        'rebuilding from {"stopwords": ["a", "the"]} gave {"stopwords": ["a", "the", "the"]}'
    ]


def test_a_warm_up_that_is_not_idempotent_fails() -> None:
    class LoadsOnce(Tokenizer):
        name = "loads_once"

        def warm_up(self) -> None:
            if self.vocab is not None:
                raise RuntimeError("model already loaded")
            self.vocab = {}

    error = _breaks(LoadsOnce())
    assert error.problems == [
        "warm_up is not idempotent: a second call raised RuntimeError: model already loaded"
    ]


def test_run_returning_the_wrong_type_fails() -> None:
    class WrongType(Tokenizer):
        name = "wrong_type"

        def run(self, input: Words, ctx: RunContext) -> Any:
            return Words(text=input.text) if ctx.visit == 2 else super().run(input, ctx)

    error = _breaks(WrongType())
    assert error.problems[0] == "run returned Words for sample 1, expected Tokens"


def test_run_batch_returning_the_wrong_number_of_outputs_fails() -> None:
    class DropsLast(Tokenizer):
        name = "drops_last"

        def run(self, input: Words, ctx: RunContext) -> Tokens:
            return Tokens(tokens=input.text.split())

        def run_batch(self, inputs: Sequence[Words], ctxs: Sequence[RunContext]) -> list[Tokens]:
            return [self.run(i, c) for i, c in zip(inputs[:-1], ctxs[:-1], strict=True)]

    error = _breaks(DropsLast())
    assert error.problems == [
        "run_batch must return a list of 2 outputs, got [Tokens(tokens=['The', 'cat', 'sat'])]"
    ]


def test_run_batch_disagreeing_with_run_fails() -> None:
    class Drifts(Tokenizer):
        name = "drifts"

        def run(self, input: Words, ctx: RunContext) -> Tokens:
            return Tokens(tokens=input.text.split())  # forgets to lower-case

    error = _breaks(Drifts())
    assert error.problems == ["run_batch outputs differ from run outputs on the same inputs"]
    # A scripted FakeAgent is stateful, so its batch answers differ from its single answers.
    assert _breaks(FakeAgent(labels=["a", "b", "c"]), SAMPLES).problems == error.problems


# ----------------------------------------------------------------------------- AgentContractTests


class TestFakeAgentContract(AgentContractTests):
    samples: ClassVar[Sequence[Any]] = SAMPLES

    def make_agent(self) -> FakeAgent:
        return FakeAgent(label="contract", score=0.5)


class TestTokenizerContract(AgentContractTests):
    samples: ClassVar[Sequence[Any]] = WORDS

    def make_agent(self) -> Tokenizer:
        return Tokenizer(lower=False, stopwords=["on"])


def test_contract_tests_fail_for_a_broken_agent() -> None:
    class Drifts(Tokenizer):
        name = "drifts"

        def run(self, input: Words, ctx: RunContext) -> Tokens:
            return Tokens(tokens=[])

    class TestDrifts(AgentContractTests):
        samples: ClassVar[Sequence[Any]] = WORDS

        def make_agent(self) -> Drifts:
            return Drifts()

    suite = TestDrifts()
    suite.test_class_contract()
    suite.test_init_params_round_trip()
    suite.test_warm_up_is_idempotent()
    with pytest.raises(AgentContractError, match="run_batch outputs differ"):
        suite.test_outputs_and_batch()


def test_contract_tests_need_make_agent_and_samples() -> None:
    with pytest.raises(NotImplementedError, match=r"define make_agent\(\)"):
        AgentContractTests().test_class_contract()

    class NoSamples(AgentContractTests):
        def make_agent(self) -> FakeAgent:
            return FakeAgent()

    with pytest.raises(AssertionError, match=r"set samples = \[\.\.\.\]"):
        NoSamples().test_outputs_and_batch()


# ----------------------------------------------------------------------------- fakes


def _ctx(step: str = "s") -> RunContext:
    return RunContext("run", step)


def test_fake_agent_defaults() -> None:
    agent = FakeAgent()
    out = agent.run(FakeInput(text="hi", n=1), _ctx())
    assert out == FakeOutput(text="hi", label="ok", score=1.0, n=2)
    assert (FakeAgent.name, FakeAgent.role) == ("fake", Role.REASONING)


def test_fake_agent_labels_follow_the_script_and_the_last_repeats() -> None:
    agent = FakeAgent(labels=["a", "b"], label="ignored")
    labels = [agent.run(FakeInput(), _ctx()).label for _ in range(4)]
    assert labels == ["a", "b", "b", "b"]


def test_fake_agent_echo_uses_the_input_text_as_label() -> None:
    agent = FakeAgent(echo=True, labels=["ignored"], score=0.3)
    out = agent.run(FakeInput(text="refund"), _ctx())
    assert (out.label, out.score) == ("refund", 0.3)


def test_fake_agent_fails_the_first_fail_times_calls() -> None:
    agent = FakeAgent(fail_times=2)
    for n in (1, 2):
        with pytest.raises(RuntimeError, match=f"^scripted failure {n} of 2$"):
            agent.run(FakeInput(text=str(n)), _ctx())
    assert agent.run(FakeInput(text="3"), _ctx()).label == "ok"
    assert [i.text for _, i in agent.calls] == ["1", "2", "3"]  # failed calls count too


def test_fake_agents_journal_the_call_order_across_agents() -> None:
    journal: list[tuple[str, str]] = []
    first, second = FakeAgent(journal=journal), FakeAgent(journal=journal)

    first.run(FakeInput(text="x"), _ctx("perceive"))
    second.run_batch([FakeInput(text="y"), FakeInput(text="z")], [_ctx("act"), _ctx("act")])
    first.run(FakeInput(text="w"), _ctx("perceive"))

    assert journal == [("perceive", "x"), ("act", "y"), ("act", "z"), ("perceive", "w")]
    assert (first.batch_sizes, second.batch_sizes) == ([], [2])
    assert [step for step, _ in second.calls] == ["act", "act"]


def test_fake_agent_counts_warm_ups() -> None:
    agent = FakeAgent()
    agent.warm_up()
    agent.warm_up()
    assert agent.warm_ups == 2


def test_async_fake_agent_runs_and_batches_as_coroutines() -> None:
    agent = AsyncFakeAgent(labels=["a", "b"])
    assert inspect.iscoroutinefunction(agent.run)
    assert AsyncFakeAgent.name == "fake_async"

    single = asyncio.run(agent.run(FakeInput(text="one"), _ctx()))
    batch = asyncio.run(_await(agent.run_batch([FakeInput(text="two")] * 2, [_ctx()] * 2)))

    assert single.label == "a"
    assert [o.label for o in batch] == ["b", "b"]
    assert agent.batch_sizes == [2]


async def _await(value: Any) -> Any:
    return await value


def test_join_agent_joins_branch_texts() -> None:
    out = JoinAgent().run(JoinInput(texts=["left", "right"]), _ctx())
    assert (out.text, out.label) == ("left+right", "joined")
    assert (JoinAgent.name, JoinAgent.role) == ("fake_join", Role.DECISION)
