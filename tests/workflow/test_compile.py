"""Compile-time validation: every problem found, named, and explained with valid options."""

from __future__ import annotations

from typing import Any, Literal

import networkx as nx
import pytest
from pydantic import BaseModel

from agents import Agent, AgentRegistry, Role, RunContext
from agents.testing import FakeAgent, FakeInput, FakeOutput
from workflow import Workflow, WorkflowCompileError, failure, state, task


class Task(BaseModel):
    text: str
    priority: int = 0


class Decision(BaseModel):
    action: Literal["reply", "escalate"]
    confidence: float
    tags: list[str] = []
    scores: dict[str, float] = {}


class Decide(Agent[FakeInput, Decision]):
    name = "decide_test"
    role = Role.DECISION

    def run(self, input: FakeInput, ctx: RunContext) -> Decision:
        return Decision(action="reply", confidence=1.0)


class NeedsCount(BaseModel):
    count: int
    label: str


class Counter(Agent[NeedsCount, FakeOutput]):
    name = "counter_test"
    role = Role.EXECUTION

    def run(self, input: NeedsCount, ctx: RunContext) -> FakeOutput:
        return FakeOutput(n=input.count)


def problems(wf: Workflow, registry: AgentRegistry | None = None) -> list[tuple[str, str]]:
    with pytest.raises(WorkflowCompileError) as info:
        wf.compile(registry=registry)
    return [(p.code, p.message) for p in info.value.problems]


def codes(wf: Workflow, registry: AgentRegistry | None = None) -> list[str]:
    return [code for code, _ in problems(wf, registry)]


def test_valid_workflow_compiles_to_an_immutable_graph() -> None:
    wf = Workflow("ok", task=Task).step("a", FakeAgent()).step("b", FakeAgent()).route("a", "b")
    compiled = wf.compile()
    assert compiled.entry == "a"
    assert list(compiled.steps) == ["a", "b"]
    assert list(compiled.graph.edges) == [("a", "b")]
    with pytest.raises(AttributeError, match="immutable"):
        compiled.entry = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        compiled.steps["c"] = compiled.steps["a"]  # type: ignore[index]
    with pytest.raises(nx.NetworkXError):
        compiled.graph.add_node("x")


def test_empty_workflow() -> None:
    assert codes(Workflow("e", task=Task)) == ["empty-workflow"]


def test_unknown_agent_name_lists_registered_agents_and_suggests() -> None:
    registry = AgentRegistry(entry_point_group=None)
    registry.register(FakeAgent)
    wf = Workflow("u", task=Task).step("a", "fak")
    [(code, message)] = problems(wf, registry)
    assert code == "unknown-agent"
    assert "Unknown agent 'fak'. Did you mean 'fake'? Registered agents: fake." in message


def test_agent_by_name_is_built_with_params() -> None:
    registry = AgentRegistry(entry_point_group=None)
    registry.register(FakeAgent)
    compiled = (
        Workflow("n", task=Task).step("a", "fake", params={"label": "x"}).compile(registry=registry)
    )
    agent = compiled.steps["a"].agent
    assert isinstance(agent, FakeAgent)
    assert agent.label == "x"


def test_bad_agent_params() -> None:
    registry = AgentRegistry(entry_point_group=None)
    registry.register(FakeAgent)
    wf = Workflow("p", task=Task).step("a", "fake", params={"lable": "x"})
    [(code, message)] = problems(wf, registry)
    assert code == "bad-agent"
    assert "lable" in message


def test_unknown_route_targets_list_the_steps() -> None:
    wf = Workflow("r", task=Task).step("a", FakeAgent()).route("a", "b").route("c", "a")
    found = problems(wf)
    assert [c for c, _ in found] == ["unknown-step", "unknown-step"]
    assert "route 'a' -> 'b' names unknown step 'b'; steps: a" in found[0][1]


def test_unknown_entry() -> None:
    wf = Workflow("x", task=Task, entry="start").step("a", FakeAgent())
    [(code, message)] = problems(wf)
    assert code == "unknown-entry"
    assert "steps: a" in message


def test_unreachable_step() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent()).step("island", FakeAgent())
    [(code, message)] = problems(wf)
    assert code == "unreachable-step"
    assert "'island' cannot be reached from the entry 'a'" in message


def test_no_path_to_an_end() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent(), max_visits=3)
    wf.step("b", FakeAgent()).route("a", "b").route("b", "a")
    assert sorted(codes(wf)) == ["no-end", "no-end"]


def test_unbounded_cycle() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent()).step("b", FakeAgent())
    wf.step("end", FakeAgent())
    wf.route("a", "b").route("b", "a", when=state("b").label == "again").route("b", "end")
    [(code, message)] = problems(wf)
    assert code == "unbounded-loop"
    assert "the loop through a, b has no bound; set max_visits=" in message


def test_self_loop_needs_a_bound() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent()).step("end", FakeAgent())
    wf.route("a", "a", when=state("a").label == "again").route("a", "end")
    assert codes(wf) == ["unbounded-loop"]


def test_ambiguous_routes() -> None:
    wf = Workflow("x", task=Task)
    for name in ("a", "b", "c", "d"):
        wf.step(name, FakeAgent())
    wf.route("a", "b")  # default first: the rule route after it can never fire
    wf.route("a", "c", when=state("a").label == "x")
    wf.route("a", "d", when=state("a").label == "x")  # same rule twice
    wf.on_error("a", "b").on_error("a", "c")
    found = problems(wf)
    assert [c for c, _ in found] == ["ambiguous-route"] * 3
    messages = " ".join(m for _, m in found)
    assert "more than one error route" in messages
    assert "declare the default route last" in messages
    assert "two routes with the same rule state('a').label == 'x'" in messages


def test_join_must_name_steps_that_route_to_it() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent()).step("b", FakeAgent(), join=["a", "z"])
    wf.route("a", "b")
    [(code, message)] = problems(wf)
    assert code == "bad-join"
    assert "'b' joins 'z', which has no route to it" in message


def test_input_mapping_checked_against_agent_input() -> None:
    wf = Workflow("x", task=Task)
    wf.step("a", FakeAgent())
    wf.step("b", Counter(), inputs={"count": state("a").label, "nope": task.text})
    wf.route("a", "b")
    found = problems(wf)
    assert [c for c, _ in found] == ["bad-inputs"] * 3
    messages = [m for _, m in found]
    assert "input field 'nope' is not a field of NeedsCount" in messages[0]
    assert "fields: count, label" in messages[0]
    assert "required input field 'label' of agent 'counter_test' is not mapped" in messages[1]
    assert "maps state('a').label (str) to input field 'count' (int)" in messages[2]


def test_default_mapping_needs_same_named_task_fields() -> None:
    wf = Workflow("x", task=Task).step("count", Counter())
    found = problems(wf)
    assert "the task has no field of that name" in found[0][1]


def test_constants_in_mappings_are_type_checked() -> None:
    wf = Workflow("x", task=Task).step("c", Counter(), inputs={"count": "many", "label": "x"})
    [(code, message)] = problems(wf)
    assert code == "bad-inputs"
    assert "constant 'many' does not fit input field 'count' (int)" in message


def test_reference_to_unknown_field_lists_fields() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent(), inputs={"text": task.txt})
    [(_, message)] = problems(wf)
    assert "task (Task) has no field 'txt'; fields: text, priority" in message


def test_reference_to_step_that_never_ran_before() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent(), inputs={"text": state("b").text})
    wf.step("b", FakeAgent()).route("a", "b")
    [(_, message)] = problems(wf)
    assert "state('b').text is read in step 'a', but step 'b' never runs before it" in message


def test_rules_are_checked_against_output_types() -> None:
    wf = Workflow("x", task=Task).step("d", Decide()).step("r", FakeAgent())
    wf.step("e", FakeAgent())
    wf.route("d", "r", when=state("d").action == "rely")
    wf.route("d", "e", when=(state("d").confidence > "high") | (state("d").actoin == "x"))
    found = problems(wf)
    assert [c for c, _ in found] == ["bad-rule"] * 3
    messages = [m for _, m in found]
    assert "compares state('d').action (Literal['reply', 'escalate']) with 'rely'" in messages[0]
    assert "with 'high', which it can never equal" in messages[1]
    assert "has no field 'actoin'; fields: action, confidence, tags, scores" in messages[2]


def test_valid_rules_of_every_kind_compile() -> None:
    wf = Workflow("x", task=Task).step("d", Decide()).step("r", FakeAgent())
    wf.step("e", FakeAgent())
    rule = (
        (state("d").action.is_in(["reply"]) & (state("d").confidence >= 0.5))
        | state("d").tags.contains("vip")
        | (state("d").scores["lost"] > 0.9)
        | (task.priority > 2)
        | ~state("d").tags
    )
    wf.route("d", "r", when=rule).route("d", "e")
    wf.compile()


def test_failure_references_in_error_handlers() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent())
    wf.step("h", FakeAgent(), inputs={"text": failure("a").message, "n": failure("a").attemps})
    wf.on_error("a", "h")
    [(_, message)] = problems(wf)
    assert "failure('a') (StepFailure) has no field 'attemps'" in message


def test_every_problem_reported_at_once_and_builder_untouched() -> None:
    wf = Workflow("many", task=Task).step("a", "nope").step("b", FakeAgent())
    wf.route("a", "zzz")
    with pytest.raises(WorkflowCompileError) as info:
        wf.compile(registry=AgentRegistry(entry_point_group=None))
    assert info.value.codes == ["unknown-agent", "unknown-step"]
    assert str(info.value).startswith("Workflow 'many' has 2 problems:\n  - [unknown-agent]")
    assert list(wf.steps) == ["a", "b"]
    assert len(wf.routes) == 1


@pytest.mark.parametrize("name", ["", "1st", "has space", "dash-ed", None])
def test_bad_step_names_fail_immediately(name: Any) -> None:
    wf = Workflow("x", task=Task)
    with pytest.raises(WorkflowCompileError, match="bad-step-name"):
        wf.step(name, FakeAgent())
    assert not wf.steps


def test_duplicate_step_fails_immediately() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent())
    with pytest.raises(WorkflowCompileError, match=r"\[duplicate-step\] step 'a' is declared"):
        wf.step("a", FakeAgent())


def test_params_only_with_named_agents() -> None:
    with pytest.raises(WorkflowCompileError, match="params apply only to an agent given by name"):
        Workflow("x", task=Task).step("a", FakeAgent(), params={"label": "x"})


def test_task_type_must_be_a_model() -> None:
    with pytest.raises(TypeError, match="task must be a pydantic model class"):
        Workflow("x", task=dict)  # type: ignore[arg-type]


def test_route_without_target_fails_immediately() -> None:
    wf = Workflow("x", task=Task).step("a", FakeAgent())
    with pytest.raises(WorkflowCompileError, match=r"\[bad-route\] the route from 'a' has no"):
        wf.route("a", [])
    assert wf.routes == ()
