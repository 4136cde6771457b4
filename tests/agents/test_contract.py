"""The agent contract: roles, typed I/O, init parameters, run/run_batch, RunContext, validation."""

import asyncio
import copy
import inspect
import json
import logging
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import pytest
from pydantic import BaseModel

from agents import (
    Agent,
    AgentContractError,
    AgentError,
    Role,
    RunContext,
    StepCancelledError,
    TaskloomError,
    validate_agent_class,
)

OutT = TypeVar("OutT", bound=BaseModel)
InT = TypeVar("InT", bound=BaseModel)


class In(BaseModel):
    text: str = ""


class Out(BaseModel):
    text: str = ""


class Other(BaseModel):
    value: int = 0


class Echo(Agent[In, Out]):
    name = "echo"
    role = Role.PERCEPTION

    def run(self, input: In, ctx: RunContext) -> Out:
        return Out(text=f"{ctx.step}:{input.text}")


class Configured(Agent[In, Out]):
    name = "configured"
    role = Role.REASONING

    def __init__(self, threshold: float = 0.5, *, labels: Sequence[str] = (), **extra: Any):
        self.threshold, self.labels, self.extra = threshold, labels, extra

    def run(self, input: In, ctx: RunContext) -> Out:
        return Out(text=input.text)


# ----------------------------------------------------------------------------- roles


def test_roles_are_the_four_string_values() -> None:
    assert [r.value for r in Role] == ["perception", "reasoning", "decision", "execution"]
    assert Role("decision") is Role.DECISION
    assert json.dumps(Role.EXECUTION) == '"execution"'  # a str enum: saved as a plain string


# ----------------------------------------------------------------------------- Input / Output


def test_input_and_output_come_from_the_generic_parameters() -> None:
    assert (Echo.Input, Echo.Output) == (In, Out)


def test_an_explicit_input_overrides_the_generic_one_and_is_inherited() -> None:
    class Explicit(Agent[In, Out]):
        name = "explicit"
        role = Role.DECISION
        Input = Other

        def run(self, input: Any, ctx: RunContext) -> Out:
            return Out()

    class Child(Explicit):
        name = "child"

    assert (Explicit.Input, Explicit.Output) == (Other, Out)
    assert (Child.Input, Child.Output) == (Other, Out)


def test_type_variables_of_an_intermediate_generic_base_are_substituted() -> None:
    class FixedInput(Agent[In, OutT], Generic[OutT]):
        role = Role.DECISION

    class Swapped(Agent[InT, OutT], Generic[OutT, InT]):
        role = Role.DECISION

    class Decide(FixedInput[Other]):
        name = "decide"

        def run(self, input: In, ctx: RunContext) -> Other:
            return Other()

    class Backwards(Swapped[Out, In]):
        name = "backwards"

        def run(self, input: In, ctx: RunContext) -> Out:
            return Out()

    assert (Decide.Input, Decide.Output) == (In, Other)
    assert (Backwards.Input, Backwards.Output) == (In, Out)
    assert not hasattr(FixedInput, "Output")  # still a type variable there
    validate_agent_class(Decide)
    validate_agent_class(Backwards)


# ----------------------------------------------------------------------------- init_params


def test_init_params_record_the_arguments_given_by_name() -> None:
    agent = Configured(0.7, labels=["a"], model="mini", device="cpu")

    assert agent.init_params == {
        "threshold": 0.7,  # positional, recorded by name
        "labels": ["a"],
        "model": "mini",  # **extra is flattened
        "device": "cpu",
    }
    assert repr(agent) == "Configured(threshold=0.7, labels=['a'], model='mini', device='cpu')"


def test_init_params_leave_out_defaults_and_are_a_copy() -> None:
    agent = Configured()
    assert agent.init_params == {}
    assert Echo().init_params == {}

    agent.init_params["threshold"] = 9
    assert agent.init_params == {}


def test_bad_arguments_are_reported_by_init_itself() -> None:
    with pytest.raises(TypeError, match=r"Configured.__init__\(\) takes from 1 to 2 positional"):
        Configured(0.1, 0.2)  # type: ignore[call-arg, arg-type]


def test_an_agent_without_init_rejects_arguments() -> None:
    with pytest.raises(
        TypeError, match=r"^Echo\(\) takes no arguments \(it defines no __init__\)$"
    ):
        Echo(threshold=1)


def test_copies_keep_init_params_even_with_required_parameters() -> None:
    class Required(Agent[In, Out]):
        name = "required"
        role = Role.EXECUTION

        def __init__(self, *, target: str) -> None:
            self.target = target

        def run(self, input: In, ctx: RunContext) -> Out:
            return Out(text=self.target)

    agent = Required(target="crm")
    for clone in (copy.copy(agent), copy.deepcopy(agent)):
        assert clone.init_params == {"target": "crm"}
        assert clone.target == "crm"


# ----------------------------------------------------------------------------- warm_up, run_batch


def test_warm_up_defaults_to_a_no_op() -> None:
    agent = Echo()
    assert agent.warm_up() is None  # type: ignore[func-returns-value]
    assert agent.warm_up() is None  # type: ignore[func-returns-value]


def test_default_run_batch_calls_run_once_per_input_in_order() -> None:
    inputs = [In(text="a"), In(text="b")]
    ctxs = [RunContext("r", "s1"), RunContext("r", "s2")]

    assert Echo().run_batch(inputs, ctxs) == [Out(text="s1:a"), Out(text="s2:b")]
    with pytest.raises(ValueError, match="zip"):
        Echo().run_batch(inputs, ctxs[:1])


def test_default_run_batch_gathers_an_async_run_concurrently() -> None:
    events: list[str] = []

    class Slow(Agent[In, Out]):
        name = "slow"
        role = Role.REASONING

        async def run(self, input: In, ctx: RunContext) -> Out:
            events.append(f"start {input.text}")
            await asyncio.sleep(0)
            events.append(f"end {input.text}")
            return Out(text=input.text.upper())

    batch = Slow().run_batch([In(text="a"), In(text="b")], [RunContext("r", "s")] * 2)

    assert inspect.isawaitable(batch)
    assert asyncio.run(_await(batch)) == [Out(text="A"), Out(text="B")]
    assert events == ["start a", "start b", "end a", "end b"]


async def _await(value: Any) -> Any:
    return await value


# ----------------------------------------------------------------------------- RunContext


def test_idempotency_key_is_stable_across_attempts_and_differs_per_visit() -> None:
    first = RunContext("run1", "charge", attempt=1, visit=1)
    retry = RunContext("run1", "charge", attempt=3, visit=1)
    loop = RunContext("run1", "charge", attempt=1, visit=2)

    assert first.idempotency_key == retry.idempotency_key == "run1:charge:1"
    assert loop.idempotency_key == "run1:charge:2"
    assert RunContext("run2", "charge").idempotency_key != first.idempotency_key
    assert RunContext("run1", "refund").idempotency_key != first.idempotency_key


def test_context_defaults_and_repr() -> None:
    ctx = RunContext("r", "s")
    assert (ctx.attempt, ctx.visit, ctx.knowledge, ctx.cancelled) == (1, 1, None, False)
    assert repr(RunContext("r", "s", attempt=2)) == "RunContext(run_id='r', step='s', attempt=2)"


def test_cancel_makes_raise_if_cancelled_raise_step_cancelled_error() -> None:
    ctx = RunContext("run7", "classify")
    ctx.raise_if_cancelled()  # not cancelled: nothing happens

    ctx.cancel()

    assert ctx.cancelled
    with pytest.raises(StepCancelledError) as caught:
        ctx.raise_if_cancelled()
    assert str(caught.value) == "Step 'classify' of run 'run7' was cancelled."
    assert isinstance(caught.value, AgentError)
    assert isinstance(caught.value, TaskloomError)


def test_logger_tags_records_with_run_step_and_attempt(caplog: pytest.LogCaptureFixture) -> None:
    ctx = RunContext("run3", "route", attempt=2)
    assert ctx.logger is ctx.logger

    with caplog.at_level(logging.INFO, logger="taskloom.agents"):
        ctx.logger.info("scored %d items", 3)

    (record,) = caplog.records
    assert record.name == "taskloom.agents"
    assert record.getMessage() == "scored 3 items"
    assert {k: vars(record)[k] for k in ("run_id", "step", "attempt")} == {
        "run_id": "run3",
        "step": "route",
        "attempt": 2,
    }


# ----------------------------------------------------------------------------- validation


def test_validate_agent_class_lists_every_problem_at_once() -> None:
    class Broken(Agent[dict, Out]):  # type: ignore[type-arg, type-var]
        name = "9lives"

    with pytest.raises(AgentContractError) as caught:
        validate_agent_class(Broken, origin="plugin 'x'")

    error = caught.value
    assert error.agent == "9lives"
    assert error.origin == "plugin 'x'"
    assert error.problems == [
        "name must be a string of letters, digits, '_', '.', '-' starting with a letter; "
        "got '9lives'",
        "role must be one of Role.PERCEPTION, Role.REASONING, Role.DECISION, "
        "Role.EXECUTION; got None",
        "Input must be a pydantic model class (declare it as Agent[InputModel, OutputModel] "
        "or set Input = ...); got <class 'dict'>",
        "it does not implement run",
    ]
    assert str(error).startswith("Agent '9lives' from plugin 'x' breaks the agent contract:\n")
    assert "\n  - it does not implement run" in str(error)
    assert isinstance(error, TypeError)


def test_validate_agent_class_checks_method_signatures() -> None:
    class Sloppy(Agent[In, Out]):
        name = "sloppy"
        role = Role.EXECUTION

        def warm_up(self, device: str) -> None:  # type: ignore[override]
            pass

        def run(self, input: In) -> Out:  # type: ignore[override]
            return Out()

        def run_batch(self, inputs, ctxs, extra):  # type: ignore[no-untyped-def, override]
            return []

    with pytest.raises(AgentContractError) as caught:
        validate_agent_class(Sloppy)

    assert caught.value.problems == [
        "run must take exactly two arguments after self (input, ctx); it takes ['input']",
        "run_batch must take exactly two arguments after self (inputs, ctxs); it takes "
        "['inputs', 'ctxs', 'extra']",
        "warm_up must take no arguments after self",
    ]


def test_validate_agent_class_rejects_non_agents_and_missing_attributes() -> None:
    class NotAnAgent:
        name = "x"

    with pytest.raises(AgentContractError, match=r"NotAnAgent is not a subclass of agents\.Agent"):
        validate_agent_class(NotAnAgent)

    class Bare(Agent):  # type: ignore[type-arg]
        def run(self, input: Any, ctx: RunContext) -> Any:
            return input

    with pytest.raises(AgentContractError) as caught:
        validate_agent_class(Bare)
    assert caught.value.agent == "Bare"  # no name: the class name stands in
    assert [p.split(";")[0] for p in caught.value.problems] == [
        "name must be a string of letters, digits, '_', '.', '-' starting with a letter",
        "role must be one of Role.PERCEPTION, Role.REASONING, Role.DECISION, Role.EXECUTION",
        "Input must be a pydantic model class (declare it as Agent[InputModel, OutputModel] "
        "or set Input = ...)",
        "Output must be a pydantic model class (declare it as Agent[InputModel, OutputModel] "
        "or set Output = ...)",
    ]


def test_validate_agent_class_accepts_async_and_keyword_extras() -> None:
    class Fine(Agent[In, Out]):
        name = "fine.v2-beta"
        role = Role.REASONING

        async def run(self, input: In, ctx: RunContext, *, debug: bool = False) -> Out:
            return Out()

    validate_agent_class(Fine)
    validate_agent_class(Echo)
    validate_agent_class(Configured)
