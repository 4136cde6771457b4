"""Saving and loading workflows: round trips, runs after loading, and errors that say where."""

from __future__ import annotations

import importlib
import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agents import AgentRegistry, ImportNotAllowedError, default_registry
from agents.testing import AsyncFakeAgent, FakeAgent, FakeInput, JoinAgent
from workflow import (
    Batch,
    Compare,
    CompiledWorkflow,
    Engine,
    Retry,
    Rule,
    RuleError,
    Truthy,
    Workflow,
    WorkflowCompileError,
    WorkflowFileError,
    load,
    loads,
    state,
    task,
)
from workflow._serialize import dump_text

HELPERS = "tl_serialize_helpers"
HELPERS_SOURCE = """
from pydantic import BaseModel, Field


class Ticket(BaseModel):
    text: str = ""
    n: int = 0
    priority: int = 0
    tags: list[str] = Field(default_factory=list)
    meta: dict[str, str] = Field(default_factory=dict)


def is_vip(state) -> bool:
    return "vip" in state.task.tags


def check_input(state) -> dict:
    seen = state.outputs["perceive"]
    return {"text": seen.text, "n": seen.n}


def join_input(state) -> dict:
    return {"texts": [state.outputs["left"].text, state.outputs["right"].text]}
"""


def _registry() -> AgentRegistry:
    registry = AgentRegistry(entry_point_group=None)
    for cls in (FakeAgent, AsyncFakeAgent, JoinAgent):
        registry.register(cls)
    return registry


REGISTRY = _registry()


@pytest.fixture(scope="module")
def helpers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A real, importable module holding the task model and the callables the tests save."""
    folder = tmp_path_factory.mktemp("helpers")
    (folder / f"{HELPERS}.py").write_text(textwrap.dedent(HELPERS_SOURCE), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield importlib.import_module(HELPERS)
    sys.modules.pop(HELPERS, None)


def rich_workflow(helpers: ModuleType) -> CompiledWorkflow:
    """Every step option, every rule kind, agents by name and by path, callables."""
    wf = Workflow("triage", task=helpers.Ticket, description="Rich: every option.")
    wf.step(
        "perceive",
        "fake",
        params={"label": "urgent", "score": 0.75},
        inputs={"text": task.text, "n": task.priority},
        retry=Retry(max_attempts=3, backoff_s=0.01, multiplier=1.5, max_backoff_s=1.0),
        timeout=5.0,
    )
    wf.step("check", FakeAgent(labels=["again", "done"]), inputs=helpers.check_input, max_visits=3)
    wf.step("left", "fake_async", params={"label": "L"}, batch=Batch(max_size=4, max_wait_s=0.001))
    wf.step("right", AsyncFakeAgent(label="R"), batch=True)
    wf.step("merge", "fake_join", join=["left", "right"], inputs=helpers.join_input)
    wf.step("escalate", FakeAgent(label="esc"), inputs={"text": state("perceive").text, "n": 7})
    wf.step("handler", "fake")
    wf.step("reply", "fake", retry=2)
    perceive, check, merge = state("perceive"), state("check"), state("merge")
    wf.route("perceive", "check", when=(perceive.label == "urgent") & (perceive.score >= 0.5))
    wf.route("perceive", "escalate", when=(perceive.label != "calm") | ~(perceive.n <= 2))
    wf.route("perceive", "escalate", when=helpers.is_vip)
    wf.route("perceive", "reply")
    wf.on_error("perceive", "handler")
    wf.route("check", "check", when=check.label == "again")
    wf.route("check", ["left", "right"], when=check.text.contains("hel") | task.tags.contains("x"))
    wf.route("check", "reply", when=~(check.n < 2))
    wf.route("check", "escalate")
    wf.route("left", "merge")
    wf.route("right", "merge")
    wf.route("merge", "reply", when=merge.text.is_in(["hello+hello", "x"]))
    wf.route("merge", "escalate", when=merge.label)
    wf.route("merge", "reply")
    esc = state("escalate")
    wf.route(
        "escalate",
        "reply",
        when=(esc.n > task.priority)
        & (task.meta["lang"] == "en")
        & (task.tags[0] != "spam")
        & (perceive.text[0] == "h"),
    )
    wf.route("escalate", "handler")
    return wf.compile(registry=REGISTRY)


def _load(text: str, **kw: Any) -> CompiledWorkflow:
    kw.setdefault("registry", REGISTRY)
    kw.setdefault("allow_imports", [HELPERS])
    return loads(text, **kw)


# ------------------------------------------------------------------------------ round trips


def test_rich_workflow_document_shape(helpers: ModuleType) -> None:
    data = rich_workflow(helpers).to_dict()
    assert list(data) == ["taskloom", "name", "description", "task", "entry", "steps", "routes"]
    assert data["taskloom"] == 1
    assert data["task"] == f"{HELPERS}:Ticket"
    steps = {s["name"]: s for s in data["steps"]}
    assert steps["perceive"] == {
        "name": "perceive",
        "agent": "fake",
        "params": {"label": "urgent", "score": 0.75},
        "inputs": {"text": {"ref": "task.text"}, "n": {"ref": "task.priority"}},
        "retry": {"max_attempts": 3, "backoff_s": 0.01, "multiplier": 1.5, "max_backoff_s": 1.0},
        "timeout_s": 5.0,
    }
    assert steps["check"] == {
        "name": "check",
        "agent": "agents.testing._fakes:FakeAgent",
        "params": {"labels": ["again", "done"]},
        "inputs": {"call": f"{HELPERS}:check_input"},
        "max_visits": 3,
    }
    assert steps["merge"]["join"] == ["left", "right"]
    assert steps["right"]["batch"] == {"max_size": 32, "max_wait_s": 0.002}
    assert steps["escalate"]["inputs"]["n"] == {"value": 7}
    assert steps["reply"] == {
        "name": "reply",
        "agent": "fake",
        "params": {},
        "retry": {"max_attempts": 2, "backoff_s": 0.0, "multiplier": 2.0, "max_backoff_s": 30.0},
    }
    assert data["routes"][2] == {
        "from": "perceive",
        "to": ["escalate"],
        "when": {"call": f"{HELPERS}:is_vip"},
    }
    assert data["routes"][4] == {"from": "perceive", "to": ["handler"], "on_error": True}
    assert data["routes"][3] == {"from": "perceive", "to": ["reply"]}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_rich_workflow_round_trips(helpers: ModuleType, fmt: str) -> None:
    original = rich_workflow(helpers)
    text = original.to_yaml() if fmt == "yaml" else original.to_json()
    loaded = _load(text, format=fmt)
    assert loaded.to_dict() == original.to_dict()
    assert dump_text(loaded.to_dict(), fmt) == text
    assert [str(r.when) for r in loaded.routes] == [str(r.when) for r in original.routes]
    assert loaded.to_mermaid() == original.to_mermaid()


def test_format_is_detected(helpers: ModuleType) -> None:
    original = rich_workflow(helpers)
    assert _load(original.to_json()).to_dict() == original.to_dict()
    assert _load(original.to_yaml()).to_dict() == original.to_dict()


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_and_load_files(helpers: ModuleType, tmp_path: Path, suffix: str) -> None:
    original = rich_workflow(helpers)
    path = tmp_path / f"triage{suffix}"
    original.save(path)
    text = path.read_text(encoding="utf-8")
    assert text == (original.to_json() if suffix == ".json" else original.to_yaml())
    loaded = load(path, allow_imports=[HELPERS], registry=REGISTRY)
    assert loaded.to_dict() == original.to_dict()


def test_yaml_is_readable(helpers: ModuleType) -> None:
    text = rich_workflow(helpers).to_yaml()
    assert text.startswith("taskloom: 1\nname: triage\n")
    assert "  inputs:\n    text: {ref: task.text}\n" in text
    assert "- from: perceive\n  to: [handler]\n  on_error: true\n" in text


def test_agent_instance_of_registered_class_saves_by_name() -> None:
    class_was_registered = "fake" in default_registry
    default_registry.register(FakeAgent)
    try:
        wf = Workflow("w", task=FakeInput).step("a", FakeAgent(label="x")).compile()
        step = wf.to_dict()["steps"][0]
    finally:
        if not class_was_registered:
            default_registry.unregister("fake")
    assert step == {"name": "a", "agent": "fake", "params": {"label": "x"}}


def test_tuples_in_params_are_saved_as_lists() -> None:
    wf = Workflow("w", task=FakeInput).step("a", FakeAgent(labels=("p", "q"))).compile()
    assert wf.to_dict()["steps"][0]["params"] == {"labels": ["p", "q"]}
    assert loads(wf.to_yaml()).to_dict() == wf.to_dict()


# ------------------------------------------------------------------------- loaded runs alike


def _trace(engine: Engine, run_id: str) -> list[tuple[str, int, Any]]:
    return [(s.step, s.visit, s.decision) for s in engine.store.steps(run_id)]


def test_loaded_workflow_runs_like_the_original(helpers: ModuleType) -> None:
    # Build both before running: fake agents count their calls, so each copy starts fresh.
    original = rich_workflow(helpers)
    loaded = _load(original.to_yaml())
    tasks = [
        {"text": "hello", "priority": 1, "tags": ["vip"], "meta": {"lang": "en"}},
        {"text": "bye", "priority": 1},
    ]
    for item in tasks:
        engine_a, engine_b = Engine(), Engine()
        first, second = engine_a.run_sync(original, item), engine_b.run_sync(loaded, item)
        assert first.ok, first.error
        assert second.ok, second.error
        assert second.outputs == first.outputs
        assert second.output == first.output
        assert _trace(engine_b, second.run_id) == _trace(engine_a, first.run_id)
    steps = [s for s, _, _ in _trace(engine_a, first.run_id)]
    assert steps == ["perceive", "check", "reply"]


# ------------------------------------------------------------------------ hypothesis: shapes

FIELDS: dict[str, type] = {"text": str, "label": str, "score": float, "n": int}
FINITE = st.floats(allow_nan=False, allow_infinity=False)
CONSTANTS: dict[type, st.SearchStrategy[Any]] = {
    str: st.text(max_size=6),
    float: FINITE,
    int: st.integers(-(10**12), 10**12),
}
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "label": st.text(max_size=5),
        "labels": st.lists(st.text(max_size=3), max_size=3),
        "score": FINITE,
        "echo": st.booleans(),
    },
)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@st.composite
def leaf_rules(draw: st.DrawFn, source: str) -> Rule:
    field = draw(st.sampled_from(sorted(FIELDS)))
    ref, kind = state(source).field(field), FIELDS[field]
    form = draw(st.sampled_from(["compare", "in", "truthy", "ref", "contains"]))
    if form == "truthy":
        return Truthy(ref)
    if form == "in":
        return ref.is_in(draw(st.lists(CONSTANTS[kind], min_size=1, max_size=3)))
    if form == "contains" and kind is str:
        return ref.contains(draw(st.text(max_size=3)))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    if form == "ref" and field in ("text", "n"):
        return Compare(ref, op, task.field(field))
    return Compare(ref, op, draw(CONSTANTS[kind]))


def rules(source: str) -> st.SearchStrategy[Rule]:
    return st.recursive(
        leaf_rules(source),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda pair: pair[0] & pair[1]),
            st.tuples(inner, inner).map(lambda pair: pair[0] | pair[1]),
            inner.map(lambda rule: ~rule),
        ),
        max_leaves=4,
    )


@st.composite
def agents(draw: st.DrawFn) -> tuple[Any, dict[str, Any] | None]:
    params = draw(PARAMS)
    kind = draw(st.sampled_from(["fake", "fake_async", FakeAgent, AsyncFakeAgent]))
    return (kind, params or None) if isinstance(kind, str) else (kind(**params), None)


@st.composite
def inputs(draw: st.DrawFn, parent: str | None) -> Any:
    text = st.one_of(st.just(task.text), CONSTANTS[str])
    if parent is not None:
        text = st.one_of(text, st.just(state(parent).text))
    return draw(
        st.one_of(
            st.none(),
            st.fixed_dictionaries({"text": text}, optional={"n": CONSTANTS[int]}),
        )
    )


OPTIONS = {
    "retry": st.one_of(
        st.none(),
        st.builds(
            Retry,
            max_attempts=st.integers(1, 5),
            backoff_s=st.floats(0, 1),
            multiplier=st.floats(1, 3),
            max_backoff_s=st.floats(0, 60),
        ),
    ),
    "timeout": st.one_of(st.none(), st.floats(0.001, 100)),
    "max_visits": st.one_of(st.none(), st.integers(1, 5)),
    "batch": st.one_of(
        st.none(),
        st.just(True),
        st.builds(Batch, max_size=st.integers(1, 64), max_wait_s=st.floats(0, 0.1)),
    ),
}


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    """A random valid DAG: each step hangs under an earlier one; rules read the parent."""
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    parents = [None, *(draw(st.integers(0, i - 1)) for i in range(1, len(names)))]
    wf = Workflow(
        draw(st.text(max_size=10)), task=FakeInput, description=draw(st.text(max_size=20))
    )
    for name, parent in zip(names, parents, strict=True):
        agent, params = draw(agents())
        parent_name = None if parent is None else names[parent]
        options = draw(st.fixed_dictionaries(OPTIONS))
        wf.step(name, agent, params=params, inputs=draw(inputs(parent_name)), **options)
    for index, source in enumerate(names):
        kids = [names[i] for i, p in enumerate(parents) if p == index]
        groups = [kids] if len(kids) > 1 and draw(st.booleans()) else [[k] for k in kids]
        seen: list[dict[str, Any]] = []
        for position, group in enumerate(groups):
            last = position == len(groups) - 1
            when = None if last and draw(st.booleans()) else draw(rules(source))
            if when is not None:
                assume(when.to_dict() not in seen)  # two equal rules would not compile
                seen.append(when.to_dict())
            wf.route(source, group, when=when)
        later = names[index + 1 :]
        if later and draw(st.booleans()):
            wf.on_error(source, draw(st.sampled_from(later)))
    return wf


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_random_workflows_round_trip(wf: Workflow) -> None:
    compiled = wf.compile(registry=REGISTRY)
    text = compiled.to_yaml()
    loaded = loads(text, registry=REGISTRY)
    assert loaded.to_yaml() == text
    assert loaded.to_dict() == compiled.to_dict()
    as_json = compiled.to_json()
    assert loads(as_json, format="json", registry=REGISTRY).to_json() == as_json


# ---------------------------------------------------------------------------------- bad input

MINIMAL = {
    "taskloom": 1,
    "name": "w",
    "task": "agents.testing._fakes:FakeInput",
    "steps": [{"name": "a", "agent": "fake"}],
}


def _with(**changes: Any) -> str:
    """MINIMAL changed (``steps=...``, ``routes=...``) as YAML; None values drop a key."""
    data = {**MINIMAL, **changes}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False)


def _step(**changes: Any) -> str:
    step = {k: v for k, v in {"name": "a", "agent": "fake", **changes}.items() if v is not None}
    return _with(steps=[step])


def test_minimal_file_loads_with_defaults() -> None:
    wf = _load(_with())
    assert (wf.entry, wf.description, wf.routes) == ("a", "", ())


def test_malformed_yaml() -> None:
    with pytest.raises(WorkflowFileError, match="not valid YAML") as info:
        loads("taskloom: [1\nname: x\n")
    assert isinstance(info.value.__cause__, yaml.YAMLError)


def test_malformed_json() -> None:
    with pytest.raises(WorkflowFileError, match="not valid JSON") as info:
        loads('{"taskloom": 1,')
    assert isinstance(info.value.__cause__, json.JSONDecodeError)
    with pytest.raises(WorkflowFileError, match="not valid JSON"):
        loads("taskloom: 1", format="json")


def test_unknown_format_argument() -> None:
    with pytest.raises(ValueError, match="Unknown format 'toml'"):
        loads("", format="toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "top level: expected a mapping, got ['a']"),
        (
            _with(nmae="x"),
            "top level: unknown key 'nmae' (did you mean 'name'?); valid keys: "
            "taskloom, name, description, task, entry, steps, routes",
        ),
        (_with(task=None), "top level: missing required key 'task'"),
        (_step(agent=None), "steps[0]: missing required key 'agent'"),
        (
            _step(retry={"max_attemps": 3}),
            "steps[0].retry: unknown key 'max_attemps' (did you "
            "mean 'max_attempts'?); valid keys: max_attempts, "
            "backoff_s, multiplier, max_backoff_s",
        ),
        (_step(retry={"max_attempts": 0}), "steps[0].retry: Retry.max_attempts must be >= 1"),
        (_step(retry={"max_attempts": 1.5}), "steps[0].retry.max_attempts: expected an integer"),
        (_step(batch={"max_size": True}), "steps[0].batch.max_size: expected an integer, got True"),
        (_step(timeout_s="fast"), "steps[0].timeout_s: expected seconds, got 'fast'"),
        (_step(join="b"), "steps[0].join: expected a list of step names, got 'b'"),
        (_step(params=[1]), "steps[0].params: expected a mapping, got [1]"),
        (_step(inputs={"text": "hi"}), "steps[0].inputs.text: expected a mapping, got 'hi'"),
        (
            _step(inputs={"text": {"ref": "task.text", "value": 1}}),
            "steps[0].inputs.text: expected {ref: <reference>} or {value: <constant>}",
        ),
        (_with(steps={"a": 1}), "steps: expected a list of steps"),
        (_with(name=3), "name: expected a string, got 3"),
        (_with(routes=[{"from": "a"}]), "routes[0]: missing required key 'to'"),
        (_with(routes=[{"from": "a", "to": "a"}]), "routes[0].to: expected a list of step names"),
        (_with(routes=[{"from": "a", "to": []}]), "routes[0].to: expected a non-empty list"),
        (
            _with(routes=[{"from": "a", "to": ["a", "b"], "on_error": True}]),
            "routes[0]: an error route has exactly one target and no 'when'",
        ),
        (
            _with(routes=[{"from": "a", "to": ["a"], "on_error": "yes"}]),
            "routes[0].on_error: expected a bool",
        ),
    ],
    ids=lambda value: (
        value.split(":")[0].split(" ")[0] if value.startswith(("top", "ste", "rou", "name")) else ""
    ),
)
def test_structural_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(WorkflowFileError) as info:
        _load(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("when", "message"),
    [
        (
            {"op": "==", "ref": "state.a.label", "vale": 1},
            "routes[0].when: unknown key 'vale' (did you mean 'value'?); valid keys: op, ref, "
            "value, other",
        ),
        ({"op": "==", "value": 1}, "routes[0].when: missing required key 'ref'"),
        (
            {"op": "==", "ref": "state.a.label", "value": 1, "other": "task.text"},
            "routes[0].when: a comparison has 'value' or 'other', not both",
        ),
        (
            {"all": [{"not": {"op": "true", "ref": "state.a.label", "x": 1}}, {}]},
            "routes[0].when.all[0].not: unknown key 'x'",
        ),
        ({"any": {"op": "true"}}, "routes[0].when.any: expected a list of rules"),
        ({"not": 1, "call": "x:y"}, "routes[0].when: unknown key 'call'; valid keys: not"),
        ("state.a.label", "routes[0].when: expected a rule, one of {op: <operator>"),
        (
            {"op": "~=", "ref": "state.a.label", "value": 1},
            "routes[0].when: Unknown operator '~='; valid: ==, !=, <, <=, >, >=, in, contains",
        ),
        (
            {"op": "==", "ref": "tusk.text", "value": 1},
            "routes[0].when: Bad reference 'tusk.text': it must start with 'task', 'state.<step>'",
        ),
        (
            {"all": [{"op": "true", "ref": "task.text"}]},
            "routes[0].when: AllOf needs at least two rules",
        ),
    ],
)
def test_bad_rules_say_where(when: Any, message: str) -> None:
    text = _with(
        steps=[{"name": "a", "agent": "fake"}, {"name": "b", "agent": "fake"}],
        routes=[{"from": "a", "to": ["b"], "when": when}],
    )
    with pytest.raises(WorkflowFileError) as info:
        _load(text)
    assert message in str(info.value)


def test_bad_reference_in_inputs_keeps_the_cause() -> None:
    with pytest.raises(
        WorkflowFileError,
        match=r"steps\[0\]\.inputs\.text\.ref: Bad reference "
        r"'state\.a\.label\[x\]': cannot parse from '\[x\]'",
    ) as info:
        _load(_step(inputs={"text": {"ref": "state.a.label[x]"}}))
    assert isinstance(info.value.__cause__, RuleError)


@pytest.mark.parametrize("version", [2, 0, "1", True, 1.0])
def test_unsupported_version(version: Any) -> None:
    with pytest.raises(
        WorkflowFileError,
        match=r"taskloom: unsupported format version .*; "
        r"supported: 1$",
    ):
        _load(_with(taskloom=version))


def test_unknown_agent_name_is_a_compile_error() -> None:
    with pytest.raises(WorkflowCompileError) as info:
        _load(_step(agent="intnet"))
    assert info.value.codes == ["unknown-agent"]
    assert "Unknown agent 'intnet'" in str(info.value)
    assert "Registered agents: fake, fake_async, fake_join" in str(info.value)


def test_other_compile_problems_surface_as_compile_errors() -> None:
    text = _with(steps=[{"name": "a", "agent": "fake"}, {"name": "b", "agent": "fake"}])
    with pytest.raises(WorkflowCompileError) as info:
        _load(text)
    assert info.value.codes == ["unreachable-step"]


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("agents.testing._fakes:FakeInput", {}, "FakeInput is not a subclass of agents.Agent"),
        ("agents.testing._fakes:FakeAgent", {"colour": 1}, "cannot be built with {'colour': 1}"),
    ],
)
def test_bad_agent_class_by_path_is_a_compile_error(
    path: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(WorkflowCompileError) as info:
        _load(_step(agent=path, params=params))
    assert info.value.codes == ["bad-agent"]
    assert message in str(info.value)


def test_unresolvable_import_path_is_a_file_error() -> None:
    with pytest.raises(WorkflowFileError, match=r"task: Cannot import 'agents\.testing:Nope'"):
        _load(_with(task="agents.testing:Nope"))
    with pytest.raises(
        WorkflowFileError,
        match=r"task: 'agents\.testing\._fakes:FakeAgent' is "
        "not a pydantic model class",
    ):
        _load(_with(task="agents.testing._fakes:FakeAgent"))


def test_import_outside_the_allowlist_propagates(helpers: ModuleType) -> None:
    text = rich_workflow(helpers).to_yaml()
    with pytest.raises(
        ImportNotAllowedError, match=f"Refusing to import '{HELPERS}:Ticket'"
    ) as info:
        loads(text, registry=REGISTRY)
    assert info.value.path == f"{HELPERS}:Ticket"
    # A rule's callable is refused the same way, even when the task model is allowed.
    data = yaml.safe_load(text)
    data["task"] = "agents.testing._fakes:FakeInput"
    data["routes"] = [{"from": "perceive", "to": ["check"], "when": {"call": "os:getcwd"}}]
    with pytest.raises(ImportNotAllowedError, match="Refusing to import 'os:getcwd'"):
        loads(yaml.safe_dump(data), registry=REGISTRY, allow_imports=[HELPERS])


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(_step(max_visits="3"), encoding="utf-8")
    expected = f"^{re.escape(str(path))}: steps\\[0\\]\\.max_visits: expected an integer, got '3'$"
    with pytest.raises(WorkflowFileError, match=expected):
        load(path, registry=REGISTRY)


# ------------------------------------------------------------------------------- bad to save


def test_lambda_rule_cannot_be_saved(tmp_path: Path) -> None:
    wf = Workflow("w", task=FakeInput).step("a", FakeAgent()).step("b", FakeAgent())
    wf.route("a", "b", when=lambda s: True)
    compiled = wf.compile()
    with pytest.raises(
        WorkflowFileError,
        match=r"routes\[0\] \(from 'a'\): Cannot save the rule "
        "<function .*<lambda>.*only module-level functions",
    ) as info:
        compiled.to_yaml()
    assert isinstance(info.value.__cause__, RuleError)
    with pytest.raises(WorkflowFileError):
        compiled.save(tmp_path / "w.yaml")
    assert not (tmp_path / "w.yaml").exists()


def test_lambda_inputs_cannot_be_saved() -> None:
    wf = Workflow("w", task=FakeInput).step("a", FakeAgent(), inputs=lambda s: {"text": "x"})
    with pytest.raises(WorkflowFileError, match="step 'a', inputs: Cannot save the input mapping"):
        wf.compile().to_dict()


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        (FakeAgent(labels={"a"}), "step 'a', param 'labels': cannot save {'a'} (set)"),
        (FakeAgent(labels=["a", object()]), "step 'a', param 'labels'[1]: cannot save <object"),
        (FakeAgent(score=float("nan")), "step 'a', param 'score': cannot save nan (float)"),
    ],
)
def test_params_that_are_not_json_cannot_be_saved(agent: FakeAgent, message: str) -> None:
    wf = Workflow("w", task=FakeInput).step("a", agent).compile()
    with pytest.raises(WorkflowFileError) as info:
        wf.to_json()
    assert message in str(info.value)
    assert "only JSON data can be saved" in str(info.value)


def test_classes_that_cannot_be_imported_back_cannot_be_saved() -> None:
    class LocalAgent(FakeAgent):
        name = "local"

    wf = Workflow("w", task=FakeInput).step("a", LocalAgent()).compile()
    with pytest.raises(
        WorkflowFileError,
        match="step 'a': cannot save agent class "
        r"test_classes_.*LocalAgent: it cannot be imported back",
    ):
        wf.to_dict()


def test_unknown_suffix_cannot_be_saved(tmp_path: Path) -> None:
    wf = Workflow("w", task=FakeInput).step("a", FakeAgent()).compile()
    with pytest.raises(WorkflowFileError, match=r"unknown suffix '\.toml'; use \.yaml, \.yml"):
        wf.save(tmp_path / "w.toml")
