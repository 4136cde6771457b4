"""Redaction of sensitive values: card numbers, IBANs, email addresses and phone numbers.

Store functions pass user text through ``redactor_for(session)`` before writing it. Passes run
in order, each on what the last left: custom patterns, emails (a local part may hold digits),
IBANs (their digits may pass Luhn), cards (a phone rule could take their digits), phones.

IBANs, cards and phones are found as *runs* of tokens joined by single separators; each run is
scanned left to right for the longest span of whole tokens that validates (mod-97, Luhn, phone
shape). So ``4111 1111 1111 1111 123`` (card and CVV) still loses the card, and redaction is
idempotent: a token left alone was tried as the start of every span a second pass could see.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["DEFAULT_REDACTOR", "KINDS", "Redactor", "redactor_for"]

KINDS = ("card", "email", "iban", "phone")
"""The built-in kinds of sensitive value, by name."""

_NON_DIGIT = re.compile(r"[^0-9]")
_SQUASH = re.compile(r"[\s().-]")  # what the allowlist ignores in numbers

# RFC 5322's dot-atom local part over letters, digits and _%+-, at a host name. Starting only
# where a local part can start keeps the search linear.
_LOCAL = "A-Za-z0-9_%+-"
_EMAIL = re.compile(
    rf"(?<![{_LOCAL}])(?<![{_LOCAL}]\.)[{_LOCAL}]+(?:\.[{_LOCAL}]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)

# Runs start at a word boundary and separators are single characters, so no regex here can
# backtrack badly; what a run holds is decided by the scan.
_IBAN_RUN = re.compile(
    r"(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}[0-9A-Za-z]*(?: [0-9A-Za-z]{1,4}(?![0-9A-Za-z]))*"
)
_IBAN_START = re.compile(r"[A-Za-z]{2}[0-9]{2}")
_IBAN_COMPACT = re.compile(r"[A-Z]{2}[0-9]{2}[0-9A-Z]{11,30}")
_IBAN_LETTERS = {ord(c): str(n) for n, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}
# Text the IBAN pass left in IBAN form failed mod-97; the card and phone passes skip it whole,
# so an invalid IBAN stays as written instead of losing a Luhn-valid stretch of its digits.
_SKIP = (
    r"(?P<skip>(?<![0-9A-Za-z])[A-Za-z]{2}[0-9]{2}"
    r"(?:[0-9A-Za-z]{11,30}|(?: [0-9A-Za-z]{4}){2,7}(?: [0-9A-Za-z]{1,4})?)(?![0-9A-Za-z]))|"
)
_CARD_RUN = re.compile(rf"{_SKIP}(?<![0-9A-Za-z+])[0-9]+(?:[ -][0-9]+)*(?![0-9A-Za-z])")
_CARD_SEP = re.compile("([ -])")
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")  # doubled, less 9 when over 9

_PHONE_TOKEN = r"(?:\+?[0-9]+(?:\([0-9]{1,5}\)[0-9]*)?|\([0-9]{1,5}\)[0-9]*)"
# Not after '-', '.' or '/' (the tail of a reference, decimal or date); not right before what
# could start a run, which a second pass would find once this one is redacted.
_PHONE_RUN = re.compile(rf"{_SKIP}(?<![\w+\-./]){_PHONE_TOKEN}(?:[ .-]{_PHONE_TOKEN})*(?![\w+(])")
_PHONE_SEP = re.compile(r"([ .-])")
_ANY = re.compile("")
_NANP = re.compile(r"(?:1[ .-])?[2-9][0-9]{2}([ .-])[2-9][0-9]{2}\1[0-9]{4}")
_PHONE_DIGITS = range(9, 16)  # E.164 allows at most 15
_MAX_TOKENS = 6  # "+33 1 23 45 67 89"
_MIN_AREA = 3  # a trunk 0 and at least two digits of area code: "020", "07700"
_FRENCH = (5, 2)  # "01 23 45 67 89": five pairs
_GROUP = 4  # IBANs are written in groups of four


def _is_iban(span: str) -> bool:
    tokens = span.upper().split(" ")
    if len(tokens) > 1 and any(len(t) != _GROUP for t in tokens[:-1]):
        return False
    compact = "".join(tokens)
    if not _IBAN_COMPACT.fullmatch(compact):
        return False
    return int((compact[4:] + compact[:4]).translate(_IBAN_LETTERS)) % 97 == 1


def _is_phone(span: str) -> bool:
    """Whether a span looks like a phone number (precision over recall; see the tests)."""
    tokens = _PHONE_SEP.split(span)[::2]
    international = span.startswith(("+", "00"))
    parens = 2 if international else 1  # "(415) ...", "+1 (415) ...", "+44 (0)20 ..."
    if "+" in span[1:] or "(" in "".join(tokens[parens:]) or len(tokens) > _MAX_TOKENS:
        return False
    digits = _NON_DIGIT.sub("", span)
    digits = digits[2:] if span.startswith("00") else digits  # "00" dials out, as "+" does
    if len(digits) not in _PHONE_DIGITS:
        return False
    if international:
        return digits[0] != "0"
    if span.startswith("("):
        return True
    if span.startswith("0"):
        # A trunk 0 and an area code ("020 ...", "07700 ..."), or French pairs; not 05-03-2024.
        pairs = (len(tokens), *{len(t) for t in tokens}) == _FRENCH
        return span[1] != "0" and (len(tokens[0]) >= _MIN_AREA or pairs)
    return _NANP.fullmatch(span) is not None


_Pass = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


class _Kind(NamedTuple):
    """How a kind is found: runs, then spans of whole tokens whose weight is in ``sizes``."""

    name: str
    run: re.Pattern[str]
    sep: re.Pattern[str]  # one capturing group, so split() keeps the separators
    start: re.Pattern[str]  # what a span's first token starts with
    sizes: range  # a span's weight (digits; characters for IBANs): a cheap first filter
    most: int  # tokens in a span
    weight: Callable[[str], int]
    valid: Callable[[str], bool]


def _is_card(span: str) -> bool:  # Luhn; the scan has checked the length and first digit
    digits = _NON_DIGIT.sub("", span)
    return sum(map(int, digits[-1::-2] + digits[-2::-2].translate(_LUHN_DOUBLED))) % 10 == 0


def _ndigits(s: str) -> int:
    return sum(map(s.count, "0123456789"))


_RUNS = (  # in the order they run
    _Kind("iban", _IBAN_RUN, re.compile("( )"), _IBAN_START, range(15, 35), 9, len, _is_iban),
    # At most five groups, as printed on cards (4-4-4-4-3); more is a list of numbers.
    _Kind("card", _CARD_RUN, _CARD_SEP, re.compile("[1-9]"), range(13, 20), 5, len, _is_card),
    # Up to 17 digits: 15, and a "00" international prefix.
    _Kind("phone", _PHONE_RUN, _PHONE_SEP, _ANY, range(9, 18), _MAX_TOKENS, _ndigits, _is_phone),
)


class Redactor:
    """Replaces sensitive values in text with a label such as ``[CARD]``.

    Args:
        kinds: The built-in kinds to redact: any of ``card``, ``email``, ``iban``, ``phone``.
        template: How a replacement reads; ``{label}`` is the kind's label.
        labels: Labels by kind or custom-pattern name (default: the name in upper case).
        keep_last4: Keep a card's last four digits: ``[CARD ****1234]``.
        patterns: Extra regular expressions by name, applied first; each match is replaced.
        allow: Values never redacted. Numbers are compared without spaces, dashes, dots and
            parentheses; emails and custom matches whole; both ignoring case.

    A redactor is immutable and thread-safe; its patterns are compiled once.

    Raises:
        ValueError: An unknown kind or label name, a bad pattern, or a replacement it would
            redact again.
    """

    __slots__ = ("_allow", "_config", "_custom", "_email_match", "_labels", "_runs")

    def __init__(
        self,
        *,
        kinds: Iterable[str] = KINDS,
        template: str = "[{label}]",
        labels: Mapping[str, str] | None = None,
        keep_last4: bool = False,
        patterns: Mapping[str, str | re.Pattern[str]] | None = None,
        allow: Iterable[str] = (),
    ) -> None:
        self._config: dict[str, Any] = dict(kinds=tuple(kinds), template=template)
        self._config.update(labels=dict(labels or {}), keep_last4=keep_last4)
        self._config.update(patterns=dict(patterns or {}), allow=tuple(allow))
        unknown = sorted(set(self._config["kinds"]) - set(KINDS))
        if unknown:
            raise ValueError(f"Unknown redaction kinds {unknown}; valid kinds: {', '.join(KINDS)}.")
        self._labels = {name: name.upper() for name in (*KINDS, *self._config["patterns"])}
        stray = sorted(set(self._config["labels"]) - set(self._labels))
        if stray:
            raise ValueError(f"Labels for unknown names {stray}; name a kind or a custom pattern.")
        self._labels.update(self._config["labels"])
        allowed = self._config["allow"]
        self._allow = frozenset(a.casefold() for a in allowed)
        self._allow |= {_SQUASH.sub("", a).casefold() for a in allowed}
        self._custom = tuple(self._compile(n, p) for n, p in self._config["patterns"].items())
        self._email_match = functools.partial(self._match, "email")
        self._runs = tuple(
            (kind, functools.partial(self._scan, kind))
            for kind in _RUNS
            if kind.name in self._config["kinds"]
        )
        self._check_idempotent()

    def __repr__(self) -> str:
        return f"Redactor({', '.join(f'{k}={v!r}' for k, v in self._config.items())})"

    def __reduce__(self) -> tuple[Any, ...]:  # rebuilt from the config, not the compiled passes
        return (functools.partial(Redactor, **self._config), ())

    def text(self, s: str) -> str:
        """Return ``s`` with every sensitive value replaced; redacted text stays as it is."""
        for pattern, replace in self._custom:
            s = pattern.sub(replace, s)
        # An address glued to the one before it ("a@b.com-c@d.com") cannot start where that one
        # ends, so the next round finds it, once its neighbour is a label.
        for _ in range(s.count("@") if "email" in self._config["kinds"] else 0):
            s, found = _EMAIL.subn(self._email_match, s)
            if not found:
                break
        digits = _ndigits(s)  # most text has too few for any kind
        for kind, scan in self._runs:
            if digits >= kind.sizes.start or kind.name == "iban":  # an IBAN may be mostly letters
                s, found = kind.run.subn(scan, s)
                digits = _ndigits(s) if found else digits
        return s

    def json(self, value: Any) -> Any:
        """Return a copy of a JSON-like value with every string in it redacted.

        Dict keys and non-strings (numbers, booleans, None) are kept; containers are copied.
        """
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            items = [self.json(item) for item in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    def _replacement(self, name: str, found: str) -> str:
        whole = name == "email" or name not in KINDS  # a dot or dash can matter there
        key = found.casefold() if whole else _SQUASH.sub("", found).casefold()
        if not found or key in self._allow:  # a custom pattern may match empty in context
            return found
        label = self._labels[name]
        if name == "card" and self._config["keep_last4"]:
            label = f"{label} ****{_NON_DIGIT.sub('', found)[-4:]}"
        return str(self._config["template"].format(label=label))

    def _scan(self, kind: _Kind, run: re.Match[str]) -> str:
        """Replace, left to right, the longest valid span of whole tokens of a run."""
        text = run.group(0)
        if run.lastgroup == "skip":
            return text
        parts = kind.sep.split(text)  # tokens at even indexes, separators between them
        ends = list(itertools.accumulate(map(kind.weight, parts[::2]), initial=0))
        if ends[-1] < kind.sizes.start:  # most runs are short numbers: "100", "2024"
            return text
        count = len(ends) - 1
        out: list[str] = []
        i = 0
        while i < count:
            if i:
                out.append(parts[2 * i - 1])
            first = min(count, i + kind.most) if kind.start.match(parts[2 * i]) else i
            for j in range(first, i, -1):
                if ends[j] - ends[i] in kind.sizes:
                    span = "".join(parts[2 * i : 2 * j - 1])
                    if kind.valid(span):
                        out.append(self._replacement(kind.name, span))
                        i = j
                        break
            else:
                out.append(parts[2 * i])
                i += 1
        return "".join(out)

    def _compile(self, name: str, pattern: str | re.Pattern[str]) -> _Pass:
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(f"Custom pattern {name!r} is not a regex: {error}") from error
        if compiled.search("") is not None:
            raise ValueError(f"Custom pattern {name!r} matches the empty string.")
        return compiled, functools.partial(self._match, name)

    def _match(self, name: str, match: re.Match[str]) -> str:
        return self._replacement(name, match.group(0))

    def _check_idempotent(self) -> None:
        samples = {name: self._replacement(name, "x@y.io") for name in self._labels}
        samples["card"] = self._replacement("card", "4111 1111 1111 1234")
        for name, replacement in samples.items():
            if self.text(replacement) != replacement:
                raise ValueError(
                    f"The replacement for {name!r}, {replacement!r}, would itself be redacted "
                    f"(to {self.text(replacement)!r}); change the template, label or pattern."
                )


DEFAULT_REDACTOR = Redactor()
"""The redactor sessions use unless the database was given another: every kind, ``[KIND]``."""


def redactor_for(session: Session) -> Redactor:
    """Return the redactor a session carries (``session.info["redactor"]``), or the default."""
    found = session.info.get("redactor")
    if found is None:
        return DEFAULT_REDACTOR
    if not isinstance(found, Redactor):
        raise TypeError(
            f"session.info['redactor'] must be a Redactor, got {type(found).__name__}; "
            "pass one as Database(redactor=...) or leave it unset for the default."
        )
    return found
