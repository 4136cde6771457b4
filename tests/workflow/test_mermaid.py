"""Mermaid flowcharts of compiled workflows."""

from __future__ import annotations

from agents import AgentRegistry
from agents.testing import AsyncFakeAgent, FakeAgent, FakeInput, JoinAgent
from workflow import CompiledWorkflow, Workflow, loads, state

REGISTRY = AgentRegistry(entry_point_group=None)
for _cls in (FakeAgent, AsyncFakeAgent, JoinAgent):
    REGISTRY.register(_cls)


def branching() -> CompiledWorkflow:
    wf = Workflow("branching", task=FakeInput)
    wf.step("perceive", "fake")
    wf.step("left", "fake_async")
    wf.step("right", FakeAgent())
    wf.step("merge", JoinAgent(), join=["left", "right"], inputs={"texts": ["x"]})
    wf.step("reply", "fake")
    wf.step("handler", "fake")
    wf.route("perceive", ["left", "right"], when=state("perceive").label == "split")
    wf.route("perceive", "reply")
    wf.on_error("perceive", "handler")
    wf.route("left", "merge")
    wf.route("right", "merge")
    wf.route("merge", "reply")
    return wf.compile(registry=REGISTRY)


EXPECTED = """\
flowchart TD
    __start__((start))
    perceive["perceive<br/>fake · reasoning"]
    left["left<br/>fake_async · reasoning"]
    right["right<br/>fake · reasoning"]
    merge["merge<br/>fake_join · decision<br/>joins left, right"]
    reply["reply<br/>fake · reasoning"]
    handler["handler<br/>fake · reasoning"]
    __end__((end))
    __start__ --> perceive
    perceive -->|"state('perceive').label == 'split'"| left
    perceive -->|"state('perceive').label == 'split'"| right
    perceive -->|default| reply
    perceive -.->|error| handler
    left -->|default| merge
    right -->|default| merge
    merge -->|default| reply
    reply --> __end__
    handler --> __end__
"""


def test_branch_default_error_fan_out_and_join() -> None:
    assert branching().to_mermaid() == EXPECTED


def test_loaded_workflow_draws_the_same() -> None:
    original = branching()
    assert loads(original.to_yaml(), registry=REGISTRY).to_mermaid() == EXPECTED


def test_labels_escape_quotes_and_markup() -> None:
    wf = Workflow("quotes", task=FakeInput)
    wf.step("a", FakeAgent()).step("b", FakeAgent()).step("c", FakeAgent())
    wf.route("a", "b", when=state("a").label == 'say "hi" #1')
    wf.route("a", "c", when=(state("a").n < 3) & (state("a").text != "<b>"))
    lines = wf.compile().to_mermaid().splitlines()
    assert "    a -->|\"state('a').label == 'say #quot;hi#quot; #35;1'\"| b" in lines
    assert "    a -->|\"(state('a').n #lt; 3) #amp; (state('a').text != '#lt;b#gt;')\"| c" in lines
    assert not any('"' in line.split("|")[1].strip('"') for line in lines if "|" in line)


def test_step_names_mermaid_would_misread_get_other_ids() -> None:
    wf = Workflow("words", task=FakeInput)
    wf.step("start", FakeAgent()).step("end", FakeAgent()).step("step_end", FakeAgent())
    wf.route("start", "end").route("end", "step_end")
    text = wf.compile().to_mermaid()
    assert '    step_end_["end<br/>fake · reasoning"]\n' in text
    assert '    step_end["step_end<br/>fake · reasoning"]\n' in text
    assert "    start -->|default| step_end_\n    step_end_ -->|default| step_end\n" in text
    assert "    step_end --> __end__\n" in text
