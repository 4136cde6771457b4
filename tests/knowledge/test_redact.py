"""Redaction of card numbers, IBANs, emails and phone numbers before anything is stored."""

from __future__ import annotations

import pickle
import re
from typing import Any, NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from knowledge import DEFAULT_REDACTOR, Redactor
from knowledge._redact import redactor_for

redact = DEFAULT_REDACTOR.text

# Banking77-style queries holding a sensitive value, and exactly what is stored instead.
REDACTED = [
    # cards: 13 to 19 digits, spaced, dashed or compact, Luhn-valid
    ("My card 4111 1111 1111 1111 was charged twice", "My card [CARD] was charged twice"),
    ("Why was 5500-0000-0000-0004 declined at the shop?", "Why was [CARD] declined at the shop?"),
    (
        "I lost my Amex 3782 822463 10005, please freeze it",
        "I lost my Amex [CARD], please freeze it",
    ),
    (
        "The payment from card number 4012888888881881 is still pending",
        "The payment from card number [CARD] is still pending",
    ),
    (
        "Card 6011 1111 1111 1117 exp 12/25 cvv 123 got declined",
        "Card [CARD] exp 12/25 cvv 123 got declined",
    ),
    ("my card 4111 1111 1111 1111 123 was cloned", "my card [CARD] 123 was cloned"),
    (
        "Can I link my old card 4222222222222 to Apple Pay?",
        "Can I link my old card [CARD] to Apple Pay?",
    ),
    ("Someone used 4111111111111111.", "Someone used [CARD]."),
    # IBANs: ISO 13616, with or without spaces, any case
    ("transfer to DE89 3704 0044 0532 0130 00 failed", "transfer to [IBAN] failed"),
    (
        "I sent £200 to GB82 WEST 1234 5698 7654 32 yesterday and it hasn't arrived",
        "I sent £200 to [IBAN] yesterday and it hasn't arrived",
    ),
    (
        "Is FR1420041010050500013M02606 the right IBAN for my landlord?",
        "Is [IBAN] the right IBAN for my landlord?",
    ),
    (
        "my iban is nl91abna0417164300, why is the transfer pending",
        "my iban is [IBAN], why is the transfer pending",
    ),
    (
        "Please refund to BE68 5390 0754 7034 from my account.",
        "Please refund to [IBAN] from my account.",
    ),
    ("Top up from NO9386011117947 failed", "Top up from [IBAN] failed"),
    # phones: international and national formats
    ("call me on +44 7700 900123", "call me on [PHONE]"),
    (
        "My US number is +1 (415) 555-2671, text me when the card arrives",
        "My US number is [PHONE], text me when the card arrives",
    ),
    (
        "Ring me at 0044 20 7946 0958 about the disputed charge",
        "Ring me at [PHONE] about the disputed charge",
    ),
    ("You can reach me on 07700 900123 after 5pm", "You can reach me on [PHONE] after 5pm"),
    (
        "My phone number changed to (415) 555-2671, how do I update it?",
        "My phone number changed to [PHONE], how do I update it?",
    ),
    ("Is 415-555-2671 your fraud line?", "Is [PHONE] your fraud line?"),
    ("I'm in France, my number is +33 1 23 45 67 89", "I'm in France, my number is [PHONE]"),
    ("Mon numéro est 01 23 45 67 89.", "Mon numéro est [PHONE]."),
    (
        "Contact me on +44 (0)20 7946 0958 regarding the top-up",
        "Contact me on [PHONE] regarding the top-up",
    ),
    ("The text came from 1-800-555-0199, is that you?", "The text came from [PHONE], is that you?"),
    ("new mobile:+447700900123", "new mobile:[PHONE]"),
    ("landline 020 7946 0958 (home)", "landline [PHONE] (home)"),
    # emails
    ("email me at jane.doe@example.co.uk", "email me at [EMAIL]"),
    (
        "Send the statement to JOHN_SMITH+bank@mail.example.com please.",
        "Send the statement to [EMAIL] please.",
    ),
    (
        "I changed my email from a.b@old.org to a.b@new-domain.org but the app shows the old one",
        "I changed my email from [EMAIL] to [EMAIL] but the app shows the old one",
    ),
    ("(contact: ops@bank.example)", "(contact: [EMAIL])"),
    ("user 07700900123@sms.example.net got no code", "user [EMAIL] got no code"),
    # several kinds in one query
    (
        "Card 4111111111111111 and IBAN DE89370400440532013000; call +447700900123 or mail me@x.io",
        "Card [CARD] and IBAN [IBAN]; call [PHONE] or mail [EMAIL]",
    ),
    (
        "I paid £1,234.56 on 15/03/2024 from 5500 0000 0000 0004, reach me on 07700 900123",
        "I paid £1,234.56 on 15/03/2024 from [CARD], reach me on [PHONE]",
    ),
]

# Queries with numbers that are not sensitive: stored exactly as written.
UNCHANGED = [
    "I am still waiting on my card?",
    "I tried to withdraw $100, all it gave me was $20.",
    "I was charged £1,234.56 on 15/03/2024 at 14:30",
    "The transfer on 2024-03-15 for 1500.00 EUR is still pending",
    "My order number 1234 5678 9012 3456 has not arrived",  # 16 digits, fails Luhn
    "Reference 4111 1111 1111 1112 is on my statement",  # one digit off a card: fails Luhn
    "transaction id 20240315123456 shows twice",  # 14 digits, fails Luhn
    "Is DE89 3704 0044 0532 0130 01 a valid IBAN?",  # fails mod-97
    "Is GB82WEST12345698765433 right?",  # fails mod-97
    "My postcode is SW1A 1AA and I moved in 2019",
    "Payment on 05-03-2024 10:30 was declined twice",
    "sort code 20-00-00, account 12345678",
    "I've had my card for 6 weeks and 3 days",
    "The ATM at 221B Baker Street took £250.00 but gave me nothing",
    "It's 2018, why does a transfer take 3-5 working days?",
    "Exchange rate 1.1734 applied to €10,000.00",
    "Top up of 0.50 failed at 09:15 on 01.02.2024",
    "my pin is 1234 and the code was 987654",
    "I transferred 7,000 to a receiver outside the EU",
    "£200,000 deposit, 5% fee, 12/25 expiry",
    "version 1.2.3.4 of the app crashes; call 911",
    "between 9-5 on weekdays",
    "IP 192.168.100.200 blocked",
    "not an address: jane@localhost or @handle or a@b",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redacts_sensitive_values_in_banking_queries(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_leaves_dates_amounts_and_failed_checks_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(("text", "expected"), REDACTED)
def test_redacted_text_is_left_as_it_is(text: str, expected: str) -> None:
    assert redact(expected) == expected


def test_an_invalid_iban_keeps_its_digits_even_where_they_pass_luhn() -> None:
    # The BBAN digits 3704 0044 0532 0130 01 pass the Luhn check, yet the IBAN form wins.
    text = "Is DE89 3704 0044 0532 0130 01 a valid IBAN?"
    assert Redactor(kinds=["card"]).text("3704 0044 0532 0130 01") == "[CARD]"
    assert redact(text) == text


def test_ibans_and_cards_go_before_phones() -> None:
    # "0044 0532 0130 00" inside the IBAN would pass as an international phone number.
    assert redact("DE89 3704 0044 0532 0130 00") == "[IBAN]"
    assert redact("+44 7700 900123 4111 1111 1111 1111") == "[PHONE] [CARD]"


def test_glued_values_are_each_redacted() -> None:
    assert redact("a@b.com-c@d.com") == "[EMAIL][EMAIL]"
    assert redact("x@y.com4111111111111111") == "[EMAIL][CARD]"


# ----------------------------------------------------------------------------- configuration


def test_kinds_choose_what_is_redacted() -> None:
    text = "card 4111 1111 1111 1111, mail jane@example.com"
    assert Redactor(kinds=["email"]).text(text) == "card 4111 1111 1111 1111, mail [EMAIL]"
    assert Redactor(kinds=[]).text(text) == text


def test_template_and_labels_shape_the_replacement() -> None:
    redactor = Redactor(template="<{label}>", labels={"card": "PAN"})
    assert redactor.text("4111111111111111 / +44 7700 900123") == "<PAN> / <PHONE>"


def test_keep_last4_keeps_a_cards_last_four_digits() -> None:
    redactor = Redactor(keep_last4=True)
    text = "My card 4111 1111 1111 1234 is blocked"
    assert redactor.text("My card 4111 1111 1111 1111 is blocked") == (
        "My card [CARD ****1111] is blocked"
    )
    assert redactor.text(text) == text  # fails Luhn
    assert redactor.text(redactor.text("5500-0000-0000-0004")) == "[CARD ****0004]"


def test_custom_patterns_run_first_with_their_own_label() -> None:
    redactor = Redactor(patterns={"customer_id": r"\bCUS-\d{6}\b", "ref": re.compile("R#\\d+")})
    assert redactor.text("I am CUS-123456, ref R#77, mail a@b.io") == (
        "I am [CUSTOMER_ID], ref [REF], mail [EMAIL]"
    )


def test_allowlisted_values_are_never_redacted() -> None:
    redactor = Redactor(allow=["+44 20 7946 0000", "Support@Bank.example", "CUS-000000"])
    text = "call +44 (20) 7946-0000 or support@bank.example; I called from +44 20 7946 0958"
    assert redactor.text(text) == (
        "call +44 (20) 7946-0000 or support@bank.example; I called from [PHONE]"
    )
    custom = Redactor(patterns={"customer": r"CUS-\d{6}"}, allow=["cus-000000"])
    assert custom.text("CUS-000000 and CUS-123456") == "CUS-000000 and [CUSTOMER]"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kinds": ["card", "ssn"]}, r"Unknown redaction kinds \['ssn'\]; valid kinds: card, "),
        ({"labels": {"cards": "PAN"}}, r"Labels for unknown names \['cards'\]"),
        ({"patterns": {"bad": "(unclosed"}}, r"Custom pattern 'bad' is not a regex"),
        ({"patterns": {"empty": r"\d*"}}, r"Custom pattern 'empty' matches the empty string"),
        ({"template": "{label} 4111 1111 1111 1111"}, r"would itself be redacted"),
        ({"patterns": {"word": "CARD"}}, r"The replacement for 'card', '\[CARD\]', would itself"),
    ],
)
def test_bad_configuration_is_refused_with_a_reason(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Redactor(**options)


def test_a_redactor_pickles_with_its_configuration() -> None:
    redactor = Redactor(keep_last4=True, patterns={"ref": r"R#\d+"}, allow=["a@b.io"])
    copy = pickle.loads(pickle.dumps(redactor))
    assert repr(copy) == repr(redactor)
    assert copy.text("4111111111111111 R#1 a@b.io") == "[CARD ****1111] [REF] a@b.io"


# ------------------------------------------------------------------------------------- json


def test_json_redacts_every_string_and_keeps_keys_and_other_values() -> None:
    value = {
        "query": "card 4111 1111 1111 1111",
        "jane@example.com": ["call +44 7700 900123", 4111111111111111, 1.5, None, True],
        "nested": {"pair": ("DE89 3704 0044 0532 0130 00", 7), "empty": {}},
    }
    original = repr(value)

    assert DEFAULT_REDACTOR.json(value) == {
        "query": "card [CARD]",
        "jane@example.com": ["call [PHONE]", 4111111111111111, 1.5, None, True],
        "nested": {"pair": ("[IBAN]", 7), "empty": {}},
    }
    assert repr(value) == original  # the input is not changed in place


class Pair(NamedTuple):
    text: str
    number: int


def test_json_copies_named_tuples_as_plain_tuples() -> None:
    copy = DEFAULT_REDACTOR.json([Pair("mail a@b.io", 1)])
    assert copy == [("mail [EMAIL]", 1)]
    assert type(copy[0]) is tuple


@pytest.mark.parametrize("scalar", [None, 3, 2.5, False, "plain text"])
def test_json_returns_scalars_as_they_are(scalar: object) -> None:
    assert DEFAULT_REDACTOR.json(scalar) == scalar


# ------------------------------------------------------------------------------ idempotence

SAMPLES = [value for pair in REDACTED for value in pair] + UNCHANGED
PIECES = st.one_of(
    st.sampled_from(SAMPLES),
    st.text(alphabet="0123456789 +-.()@/:,_%[]'abDEGBz", max_size=12),
    st.text(max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(PIECES, max_size=8).map("".join))
# Values glued to a neighbour that a first pass redacts: each once broke idempotence.
@example("+44 7700 900123+44 7700 900123")
@example("jane.doe@example.co.uk.4111 1111 1111 1111")
@example("a@b.com.c@d.com")
@example("4111 1111 1111 1111-07700 900123")
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    for redactor in (DEFAULT_REDACTOR, Redactor(keep_last4=True)):
        once = redactor.text(text)
        assert redactor.text(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text().filter(lambda t: not any(c in "0123456789@" for c in t)))
def test_text_without_digits_or_at_signs_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_long_adversarial_text_takes_linear_time() -> None:
    # Each would take minutes if a pattern backtracked or a run were scanned quadratically.
    for text in ["1 " * 5_000, "12-" * 5_000, "a." * 5_000 + "@", "AB12 " + "abcd " * 5_000]:
        assert redact(text) == text


# ----------------------------------------------------------------------------- redactor_for


def test_redactor_for_uses_the_sessions_redactor_or_the_default() -> None:
    mine = Redactor(kinds=["email"])
    assert redactor_for(Session()) is DEFAULT_REDACTOR
    assert redactor_for(Session(info={"redactor": None})) is DEFAULT_REDACTOR
    assert redactor_for(Session(info={"redactor": mine})) is mine


def test_redactor_for_refuses_something_that_is_not_a_redactor() -> None:
    with pytest.raises(TypeError, match=r"must be a Redactor, got str; pass one as Database"):
        redactor_for(Session(info={"redactor": "off"}))
