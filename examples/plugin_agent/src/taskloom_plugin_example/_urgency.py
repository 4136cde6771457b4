"""``keyword_urgency``: how urgent a support message is, from a list of keywords."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from agents import Agent, Role, RunContext

__all__ = ["DEFAULT_KEYWORDS", "KeywordUrgencyAgent", "UrgencyInput", "UrgencyOutput"]

DEFAULT_KEYWORDS: tuple[str, ...] = (
    "urgent",
    "urgently",
    "asap",
    "immediately",
    "emergency",
    "right now",
    "outage",
    "down",
    "fraud",
    "stolen",
    "hacked",
    "locked out",
)


class UrgencyInput(BaseModel):
    """A support message."""

    text: str


class UrgencyOutput(BaseModel):
    """How urgent a message is, and which keywords said so (in order of appearance)."""

    urgent: bool
    score: float = Field(ge=0.0, le=1.0)
    matched: list[str]


class KeywordUrgencyAgent(Agent[UrgencyInput, UrgencyOutput]):
    """Flags a message urgent when enough urgency keywords occur in it.

    The score is the number of distinct keywords found divided by ``saturation``, capped at
    1; the message is urgent when the score reaches ``threshold``. Keywords match whole words
    or phrases, ignoring case and runs of whitespace. There is no model, so ``warm_up`` keeps
    the contract's no-op default; ``__init__`` only compiles one regular expression.

    Args:
        keywords: Words or phrases that signal urgency (default: ``DEFAULT_KEYWORDS``).
        threshold: The score, in [0, 1], from which a message is urgent.
        saturation: How many distinct keywords make the score 1.

    Raises:
        TypeError: A keyword is not a string.
        ValueError: A parameter is out of range, or there are no keywords or a blank one.
    """

    name = "keyword_urgency"
    role = Role.PERCEPTION

    def __init__(
        self,
        *,
        keywords: list[str] | None = None,
        threshold: float = 0.5,
        saturation: int = 2,
    ) -> None:
        given = DEFAULT_KEYWORDS if keywords is None else keywords
        if not all(isinstance(w, str) for w in given):
            raise TypeError(f"keywords must be strings, got {keywords!r}")
        words = [" ".join(w.lower().split()) for w in given]
        if not words or not all(words):
            raise ValueError(
                f"keywords must be a non-empty list of non-blank strings, got {keywords!r}"
            )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if saturation < 1:
            raise ValueError(f"saturation must be >= 1, got {saturation!r}")
        self.threshold = threshold
        self.saturation = saturation
        # Longest first, so that "locked out" wins over a keyword "locked" at the same place.
        alternatives = "|".join(
            re.escape(w).replace(r"\ ", r"\s+") for w in sorted(set(words), key=len, reverse=True)
        )
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def run(self, input: UrgencyInput, ctx: RunContext) -> UrgencyOutput:
        found = (" ".join(m.group().lower().split()) for m in self._pattern.finditer(input.text))
        matched = list(dict.fromkeys(found))
        score = min(1.0, len(matched) / self.saturation)
        return UrgencyOutput(urgent=score >= self.threshold, score=score, matched=matched)
