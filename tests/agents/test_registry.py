"""The agent registry (registration, lookup, entry points) and allowlisted imports."""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents import (
    DEFAULT_ALLOWLIST,
    ENTRY_POINT_GROUP,
    Agent,
    AgentContractError,
    AgentNotFoundError,
    AgentRegistry,
    ImportNotAllowedError,
    PluginError,
    Role,
    RunContext,
    import_object,
    object_path,
)
from agents.testing import FakeAgent, JoinAgent


class Text(BaseModel):
    text: str = ""


class Strict(Agent[Text, Text]):
    name = "strict"
    role = Role.DECISION

    def __init__(self, *, threshold: float = 0.5) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold

    def run(self, input: Text, ctx: RunContext) -> Text:
        return input


class ImpostorFake(Agent[Text, Text]):
    name = "fake"
    role = Role.EXECUTION

    def run(self, input: Text, ctx: RunContext) -> Text:
        return input


def top_level() -> None:
    """A function ``object_path`` can name."""


@pytest.fixture
def registry() -> AgentRegistry:
    """A registry that sees no installed plugins."""
    fresh = AgentRegistry(entry_point_group=None)
    fresh.register(FakeAgent)
    fresh.register(JoinAgent)
    return fresh


# ----------------------------------------------------------------------------- registration


def test_register_get_create_unregister(registry: AgentRegistry) -> None:
    assert registry.get("fake") is FakeAgent
    assert registry.names() == ["fake", "fake_join"]
    assert "fake" in registry
    assert "nope" not in registry
    assert registry.origin("fake") == "agents.testing._fakes.FakeAgent"

    agent = registry.create("fake", {"label": "x"})
    assert isinstance(agent, FakeAgent)
    assert (agent.label, agent.init_params) == ("x", {"label": "x"})
    assert registry.create("fake").init_params == {}

    registry.unregister("fake")
    registry.unregister("fake")  # unknown names are ignored
    assert registry.names() == ["fake_join"]
    with pytest.raises(AgentNotFoundError):
        registry.get("fake")


def test_register_works_as_a_decorator_and_is_idempotent(registry: AgentRegistry) -> None:
    @registry.register
    class Decorated(Agent[Text, Text]):
        name = "decorated"
        role = Role.PERCEPTION

        def run(self, input: Text, ctx: RunContext) -> Text:
            return input

    assert isinstance(Decorated, type)  # the decorator returns the class itself
    assert registry.register(Decorated) is Decorated
    assert registry.get("decorated") is Decorated
    assert registry.names() == ["decorated", "fake", "fake_join"]


def test_a_taken_name_is_an_error_naming_both_classes(registry: AgentRegistry) -> None:
    with pytest.raises(AgentContractError) as caught:
        registry.register(ImpostorFake)

    message = str(caught.value)
    assert message.startswith(
        f"Agent 'fake' from {__name__}.ImpostorFake breaks the agent contract:\n"
    )
    assert (
        "the name is already taken by agents.testing._fakes.FakeAgent (from "
        "agents.testing._fakes.FakeAgent); agent names must be unique"
    ) in message
    assert registry.get("fake") is FakeAgent  # the first registration stands


def test_registering_a_class_that_breaks_the_contract_fails(registry: AgentRegistry) -> None:
    class Nameless(Agent[Text, Text]):
        role = Role.PERCEPTION

        def run(self, input: Text, ctx: RunContext) -> Text:
            return input

    with pytest.raises(AgentContractError, match="from my-plugin breaks the agent contract"):
        registry.register(Nameless, origin="my-plugin")
    assert "Nameless" not in registry.names()


# ----------------------------------------------------------------------------- lookup errors


def test_unknown_name_lists_registered_agents_and_suggests_a_close_one(
    registry: AgentRegistry,
) -> None:
    with pytest.raises(AgentNotFoundError) as caught:
        registry.get("fkae")

    assert str(caught.value) == (
        "Unknown agent 'fkae'. Did you mean 'fake'? Registered agents: fake, fake_join. "
        "Register it with agents.register(...) or install a plugin providing it "
        "(entry-point group 'taskloom.agents')."
    )
    assert (caught.value.name, caught.value.known) == ("fkae", ["fake", "fake_join"])
    assert isinstance(caught.value, LookupError)


def test_unknown_name_without_a_close_match_or_any_agents() -> None:
    empty = AgentRegistry(entry_point_group=None)
    with pytest.raises(AgentNotFoundError) as caught:
        empty.get("retriever")
    assert str(caught.value).startswith("Unknown agent 'retriever'. Registered agents: (none).")


def test_create_with_bad_params_is_a_contract_error(registry: AgentRegistry) -> None:
    registry.register(Strict)

    with pytest.raises(AgentContractError) as unknown:
        registry.create("fake", {"lable": "x"})
    assert "cannot be built with {'lable': 'x'}: " in str(unknown.value)
    assert "unexpected keyword argument 'lable'" in str(unknown.value)
    assert isinstance(unknown.value.__cause__, TypeError)

    with pytest.raises(AgentContractError) as rejected:
        registry.create("strict", {"threshold": 3})
    assert rejected.value.problems == [
        "cannot be built with {'threshold': 3}: threshold must be in [0, 1], got 3"
    ]
    assert isinstance(rejected.value.__cause__, ValueError)

    with pytest.raises(AgentContractError, match=r"JoinAgent\(\) takes no arguments"):
        registry.create("fake_join", {"sep": "+"})


# ----------------------------------------------------------------------------- entry points


@pytest.fixture
def plugin_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A unique entry-point group with three plugins, visible through ``sys.path``.

    A ``*.dist-info`` folder is all ``importlib.metadata`` needs to find a distribution, so
    none is installed.
    """
    group = f"taskloom.test.{uuid.uuid4().hex}"
    dist_info = tmp_path / "demo_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugins\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{group}]\n"
        "fake = agents.testing:FakeAgent\n"
        "joiner = agents.testing:JoinAgent\n"
        "ghost = agents.no_such_module:Ghost\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return group


def test_entry_points_load_one_at_a_time_on_lookup(plugin_group: str) -> None:
    registry = AgentRegistry(entry_point_group=plugin_group)

    assert registry.get("fake") is FakeAgent
    assert registry.origin("fake") == (
        "plugin 'demo-plugins' (entry point 'fake = agents.testing:FakeAgent')"
    )
    assert registry.broken == {}  # the broken plugins were not touched


def test_broken_entry_points_raise_on_lookup_and_are_skipped_when_listing(
    plugin_group: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = AgentRegistry(entry_point_group=plugin_group)

    with pytest.raises(PluginError) as misnamed:
        registry.get("joiner")
    assert str(misnamed.value) == (
        "plugin 'demo-plugins' (entry point 'joiner = agents.testing:JoinAgent') provides an "
        "agent named 'fake_join'; the entry point name must equal the agent's name"
    )
    with pytest.raises(PluginError) as ghost:
        registry.get("ghost")
    assert str(ghost.value).startswith(
        "plugin 'demo-plugins' (entry point 'ghost = agents.no_such_module:Ghost') failed to "
        "import: No module named 'agents.no_such_module'"
    )
    assert isinstance(ghost.value.__cause__, ModuleNotFoundError)

    assert registry.names() == ["fake"]
    assert sorted(registry.broken) == ["ghost", "joiner"]
    assert all(isinstance(e, PluginError) for e in registry.broken.values())
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "Skipping broken agent plugin"
    ] * 2


def test_entry_points_are_scanned_once_until_refresh(
    plugin_group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = AgentRegistry(entry_point_group=plugin_group)
    assert "late" not in registry
    late = tmp_path / "late" / "late_plugin-1.0.dist-info"
    late.mkdir(parents=True)
    (late / "METADATA").write_text("Metadata-Version: 2.1\nName: late-plugin\nVersion: 1.0\n")
    (late / "entry_points.txt").write_text(
        f"[{plugin_group}]\nlate = agents.testing:AsyncFakeAgent\n"
    )
    monkeypatch.syspath_prepend(str(late.parent))
    with pytest.raises(AgentNotFoundError):
        registry.get("fake_async")  # installed after the scan: not seen yet
    registry.refresh()
    with pytest.raises(PluginError, match="provides an agent named 'fake_async'"):
        registry.get("late")


def test_a_registry_without_group_ignores_entry_points(plugin_group: str) -> None:
    assert AgentRegistry(entry_point_group=None).names() == []
    assert ENTRY_POINT_GROUP == "taskloom.agents"


# ----------------------------------------------------------------------------- import paths


def test_import_object_resolves_allowlisted_paths() -> None:
    assert DEFAULT_ALLOWLIST == ("agents", "workflow")
    assert import_object("agents.testing:FakeAgent") is FakeAgent
    assert import_object("agents.testing:FakeAgent.run") is FakeAgent.run
    assert import_object("json:dumps", allow=["json"]) is json.dumps
    assert import_object("json.decoder:JSONDecoder", allow=["json"]) is json.JSONDecoder


@pytest.mark.parametrize("path", ["jsonx:loads", "js:loads", "os:system", "agentsx.mod:X"])
def test_allowlist_prefixes_match_whole_module_names(path: str) -> None:
    with pytest.raises(ImportNotAllowedError) as caught:
        import_object(path, allow=["json", "agents"])

    assert str(caught.value) == (
        f"Refusing to import '{path}': its module is not in the import allowlist "
        "(agents, json). Loading a workflow runs code from the paths it names, so only "
        "allowlisted modules are imported; pass allow_imports=[...] to trust more."
    )
    assert (caught.value.path, caught.value.allow) == (path, ["agents", "json"])
    assert isinstance(caught.value, PluginError)


def test_an_empty_allowlist_allows_nothing() -> None:
    with pytest.raises(ImportNotAllowedError, match=r"import allowlist \(empty\)"):
        import_object("agents:Agent", allow=[])


@pytest.mark.parametrize("path", ["agents.Agent", ":Agent", "agents:", ""])
def test_malformed_paths_are_plugin_errors(path: str) -> None:
    with pytest.raises(PluginError) as caught:
        import_object(path)
    assert str(caught.value) == f"Malformed import path '{path}': expected 'package.module:Name'."


@pytest.mark.parametrize(
    ("path", "cause"),
    [("agents:NoSuchThing", AttributeError), ("agents.no_such:X", ModuleNotFoundError)],
)
def test_unresolvable_paths_are_plugin_errors(path: str, cause: type[Exception]) -> None:
    with pytest.raises(PluginError, match=f"^Cannot import '{path}': ") as caught:
        import_object(path)
    assert isinstance(caught.value.__cause__, cause)


def test_object_path_round_trips_importable_objects() -> None:
    assert object_path(FakeAgent) == "agents.testing._fakes:FakeAgent"
    assert object_path(FakeAgent.run) == "agents.testing._fakes:FakeAgent.run"
    assert object_path(json.dumps) == "json:dumps"
    assert import_object(object_path(json.dumps) or "", allow=["json"]) is json.dumps


def test_object_path_is_none_for_objects_that_cannot_be_imported_back() -> None:
    def closure() -> None:
        pass

    main: Any = lambda: None  # noqa: E731 - a lambda is the case under test
    main.__qualname__ = "main"
    main.__module__ = "__main__"
    shadowed: Any = lambda: None  # noqa: E731
    shadowed.__qualname__ = "top_level"
    shadowed.__module__ = top_level.__module__

    assert object_path(lambda: None) is None
    assert object_path(closure) is None
    assert object_path(main) is None
    assert object_path(shadowed) is None  # the path names another object
    assert object_path(42) is None
