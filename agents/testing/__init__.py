"""Testing kit: fake agents for unit tests, and the conformance kit for plugin authors.

Check your own agent in one call::

    from agents.testing import check_agent
    check_agent(MyAgent(threshold=0.3), samples=[{"text": "hello"}])

or get one pytest test per contract clause by subclassing ``AgentContractTests``.
"""

from agents.testing._conformance import AgentContractTests, check_agent
from agents.testing._fakes import (
    AsyncFakeAgent,
    FakeAgent,
    FakeInput,
    FakeOutput,
    JoinAgent,
    JoinInput,
)

__all__ = [
    "AgentContractTests",
    "AsyncFakeAgent",
    "FakeAgent",
    "FakeInput",
    "FakeOutput",
    "JoinAgent",
    "JoinInput",
    "check_agent",
]
