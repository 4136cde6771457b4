"""How a plugin author tests an agent: the taskloom conformance kit plus its own behaviour.

Run from this folder after ``pip install -e .``: ``pytest``.
"""

from importlib.metadata import entry_points
from typing import Any, ClassVar

import pytest
from taskloom_plugin_example import KeywordUrgencyAgent, UrgencyInput

from agents import ENTRY_POINT_GROUP, AgentContractError, AgentRegistry, RunContext
from agents.testing import AgentContractTests, check_agent

SAMPLES = [
    {"text": "Our site is DOWN, please fix it ASAP!"},
    {"text": "Card stolen, I need it blocked immediately"},
    {"text": "How do I change my postal address?"},
]


class TestKeywordUrgencyContract(AgentContractTests):
    """One test per clause of the agent contract."""

    samples: ClassVar[list[dict[str, Any]]] = SAMPLES

    def make_agent(self) -> KeywordUrgencyAgent:
        return KeywordUrgencyAgent(keywords=["down", "asap", "stolen"], threshold=0.5)


def test_check_agent_with_default_keywords() -> None:
    check_agent(KeywordUrgencyAgent(), SAMPLES)


def test_scores_distinct_keywords_in_order_of_appearance() -> None:
    agent = KeywordUrgencyAgent(keywords=["down", "locked out"], saturation=2, threshold=0.5)
    out = agent.run(UrgencyInput(text="Locked   OUT and the app is down, down, down"), _ctx())
    assert out.matched == ["locked out", "down"]
    assert (out.score, out.urgent) == (1.0, True)
    assert agent.run(UrgencyInput(text="it went downhill"), _ctx()).matched == []


def test_entry_point_resolves_to_the_agent() -> None:
    (entry_point,) = entry_points(group=ENTRY_POINT_GROUP, name=KeywordUrgencyAgent.name)
    assert entry_point.load() is KeywordUrgencyAgent
    assert AgentRegistry().get(KeywordUrgencyAgent.name) is KeywordUrgencyAgent


def test_bad_params_are_contract_errors() -> None:
    registry = AgentRegistry(entry_point_group=None)
    registry.register(KeywordUrgencyAgent)
    with pytest.raises(AgentContractError, match=r"threshold must be in \[0, 1\]"):
        registry.create("keyword_urgency", {"threshold": 2})


def _ctx() -> RunContext:
    return RunContext("test", "urgency")
