"""Claim splitting, number normalisation and lexical helpers of the grounding detector."""

from __future__ import annotations

import pytest

from detectors.grounding import find_numbers, split_claims
from detectors.grounding.features import is_question
from detectors.grounding.lexicon import entities, sanitize, stem
from detectors.grounding.numbers import numbers_match, parse_number_words


def _claims(text: str) -> list[str]:
    segs = split_claims(text)
    for s in segs:
        assert text[s.start : s.end] == s.text
    return [s.text for s in segs if s.kind == "claim"]


def test_abbreviations_initials_and_decimals_do_not_split() -> None:
    text = "Dr. Smith paid $1.5 million in Jan. 2020 to the U.S. team. J. K. Rowling wrote it."
    assert _claims(text) == [
        "Dr. Smith paid $1.5 million in Jan. 2020 to the U.S. team.",
        "J. K. Rowling wrote it.",
    ]


def test_quotes_and_multibyte_offsets() -> None:
    text = '"C\'est la vie," dit-elle. Le café à Zürich coûte 4,50 €. 東京は大きい。 Ok!'
    segs = split_claims(text)
    assert [s.text for s in segs] == [
        '"C\'est la vie," dit-elle.',
        "Le café à Zürich coûte 4,50 €.",
        "東京は大きい。 Ok!",
    ]
    assert segs[1].start == text.index("Le café")


def test_markdown_list_items_are_claims_without_markers() -> None:
    text = (
        "## Key facts\n1. The tower is 330 metres tall.\n- It opened in **1889**.\n"
        "* Paris hosts it."
    )
    segs = split_claims(text)
    assert [(s.kind, s.text) for s in segs] == [
        ("heading", "Key facts"),
        ("claim", "The tower is 330 metres tall."),
        ("claim", "It opened in **1889**."),
        ("claim", "Paris hosts it."),
    ]
    assert segs[1].start == text.index("The tower")


def test_preambles_refusals_and_questions_are_not_claims() -> None:
    text = (
        "Sure! Here is a summary of the passages:\n"
        "Based on the passages, the bridge opened in 1937. "
        "The passages do not mention its cost. Would you like to know more?"
    )
    segs = split_claims(text)
    assert [(s.kind, s.text) for s in segs] == [
        ("preamble", "Sure!"),
        ("preamble", "Here is a summary of the passages:"),
        ("preamble", "Based on the passages,"),
        ("claim", "the bridge opened in 1937."),
        ("refusal", "The passages do not mention its cost."),
        ("question", "Would you like to know more?"),
    ]


def test_sentence_joining_facts_is_split_into_clauses() -> None:
    text = (
        "The company was founded in Ohio in 1990, and it moved its headquarters to Texas in 2005."
    )
    assert _claims(text) == [
        "The company was founded in Ohio in 1990",
        "and it moved its headquarters to Texas in 2005.",
    ]
    assert _claims("We sell red, white, and blue flags.") == ["We sell red, white, and blue flags."]


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("1,000", 1000.0, "number"),
        ("1000", 1000.0, "number"),
        ("one thousand", 1000.0, "number"),
        ("one hundred and five", 105.0, "number"),
        ("thirty-one", 31.0, "number"),
        ("$1.3 million", 1_300_000.0, "money"),
        ("€2bn", 2e9, "money"),
        ("25%", 25.0, "percent"),
        ("25 percent", 25.0, "percent"),
        ("10th", 10.0, "ordinal"),
        ("tenth", 10.0, "ordinal"),
        ("5 pm", 17.0, "time"),
        ("17:00", 17.0, "time"),
        ("12:30 AM", 0.5, "time"),
        ("2015", 2015.0, "year"),
    ],
)
def test_number_normalisation(text: str, value: float, kind: str) -> None:
    found = find_numbers(f"It was {text} then.")
    assert len(found) == 1
    assert found[0].value == pytest.approx(value)
    assert found[0].kind == kind


def test_iso_dates_and_pronoun_one() -> None:
    values = sorted(m.value for m in find_numbers("reviewed on 2022-01-16, one of the best"))
    assert values == [1.0, 16.0, 2022.0]  # month 1, day 16, year; "one of" is not a number
    assert parse_number_words("seven hundred thousand") == 700_000
    assert parse_number_words("many") is None


def test_numbers_match_tolerates_rounding_only() -> None:
    assert numbers_match(1_300_000.0, {1_304_000.0})
    assert not numbers_match(31.0, {15.0, 30.0})


def test_stem_entities_and_sanitize() -> None:
    assert stem("grilling") == stem("grilled") == stem("grills") == "grill"
    assert stem("running") == stem("runs") == "run"
    assert [e.text for e in entities("Two Atlanta Hawks players met Pero Antic in New York.")] == [
        "Two Atlanta Hawks",
        "Pero Antic",
        "New York",
    ]
    bad = "caf\udce9 ok"
    assert sanitize(bad) == "caf\ufffd ok"
    assert len(sanitize(bad)) == len(bad)


def test_entities_do_not_run_across_commas() -> None:
    names = [e.text for e in entities("Meanwhile, Blue Kim, who was nominated by Jag, can stay.")]
    assert names == ["Blue Kim", "Jag"]
    names = [e.text for e in entities("The bill went to Governor J. B. Pritzker and Smith-Jones.")]
    assert names == ["Governor J. B. Pritzker", "Smith-Jones"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how to grill a porterhouse", True),
        ("Where is the museum?", True),
        ("Summarize the following news within 53 words:", False),
        ("Write an objective overview of the business.", False),
        ("", False),
        (None, False),
    ],
)
def test_is_question(text: str | None, expected: bool) -> None:
    assert is_question(text) is expected
