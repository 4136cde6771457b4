"""An example taskloom agent plugin: ``keyword_urgency`` scores urgent support messages.

taskloom finds the agent through this distribution's ``taskloom.agents`` entry point, and
imports this package only when a workflow first asks for the agent by name.
"""

from taskloom_plugin_example._urgency import (
    DEFAULT_KEYWORDS,
    KeywordUrgencyAgent,
    UrgencyInput,
    UrgencyOutput,
)

__all__ = ["DEFAULT_KEYWORDS", "KeywordUrgencyAgent", "UrgencyInput", "UrgencyOutput"]
