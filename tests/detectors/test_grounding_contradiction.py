"""Claims in the context's own words that say the opposite are flagged; paraphrases are not."""

from __future__ import annotations

import pytest

from detectors.grounding import FEATURE_NAMES, GroundingDetector
from detectors.grounding.contradiction import clauses, contradictions
from scope_guard.guard import ScopeGuard

MUSEUM = "The museum is closed on Mondays."
PRICES = "Adult admission is 12 euros; children under 6 enter free."
FOUNDERS = "Alice founded Acme; Bob founded Beta."
SPLIT = "The museum is open on Mondays, but the cafe is not open."


@pytest.mark.parametrize(
    ("claim", "passage", "kind"),
    [
        ("The museum is open on Mondays.", MUSEUM, "polarity"),
        ("The museum isn't closed on Mondays.", MUSEUM, "polarity"),  # negation applied
        ("Sales increased in 2020.", "Sales decreased in 2020.", "polarity"),
        ("Pets are allowed in the park.", "Pets are not allowed in the park.", "polarity"),
        ("Check-in is before noon.", "Check-in is after noon.", "polarity"),
        ("Entry to the garden is free.", "Entry to the garden costs 5 euros.", "polarity"),
        ("Children under 6 pay 12 euros.", PRICES, "moved"),  # 12 belongs to adults
        ("Alice founded Beta.", FOUNDERS, "moved"),  # Beta belongs to Bob
    ],
)
def test_contradictions_in_the_contexts_own_words(claim: str, passage: str, kind: str) -> None:
    found = contradictions(claim, [passage])
    assert kind in {c.kind for c in found}, found


@pytest.mark.parametrize(
    ("claim", "passage"),
    [
        ("The museum is closed on Mondays.", MUSEUM),
        ("The museum is not open on Mondays.", MUSEUM),  # same side once negation is applied
        ("Children under 6 enter free.", PRICES),
        ("Adult admission is 12 euros.", PRICES),
        ("Adults pay 12 euros.", PRICES),
        ("Bob founded Beta.", FOUNDERS),
        ("Pets are prohibited in the park.", "Pets are not allowed in the park."),
        # The negation is in the other clause: it says nothing about the museum.
        ("The museum is open on Mondays.", SPLIT),
        ("The river rose 3 metres.", "Officials said the river rose 3 metres after heavy rain."),
        ("Sales rose in May.", "Sales rose in May and fell in June."),
    ],
)
def test_agreeing_claims_are_not_contradictions(claim: str, passage: str) -> None:
    assert contradictions(claim, [passage]) == []


def test_clauses_cut_at_semicolons_and_joined_clauses_not_commas() -> None:
    text = "Red, white and blue; it is open, but the cafe is closed."
    assert [text[a:b].strip() for a, b in clauses(text)] == [
        "Red, white and blue",
        "it is open",
        "but the cafe is closed.",
    ]


def test_detector_flags_contradicted_claims_and_exposes_the_feature() -> None:
    det = GroundingDetector()
    bad = det.check("The museum is open on Mondays.", [MUSEUM])
    good = det.check("The museum is closed on Mondays.", [MUSEUM])
    assert not bad.claims[0].supported
    assert bad.claims[0].contradictions == ["polarity: open"]
    assert bad.feature_dict()["contradicted_claims"] == 1.0
    assert good.claims[0].supported
    assert good.claims[0].contradictions == []
    assert good.feature_dict()["contradicted_claims"] == 0.0
    assert FEATURE_NAMES[-1] == "contradicted_claims"


@pytest.mark.parametrize(
    ("question", "context", "response", "flagged"),
    [
        ("When is the museum open?", MUSEUM, "The museum is open on Mondays.", True),
        ("How much do children pay?", PRICES, "Children under 6 pay 12 euros.", True),
        ("When is the museum open?", MUSEUM, "The museum is closed on Mondays.", False),
        ("How much do children pay?", PRICES, "Children under 6 enter free.", False),
    ],
)
def test_guard_heuristic_warns_on_contradictions(
    question: str, context: str, response: str, flagged: bool
) -> None:
    report = ScopeGuard().assess(
        {"question": question, "contexts": [context], "response": response}
    )
    risk = report.scores["fabrication"]
    if flagged:
        assert risk >= 0.5, risk
        assert report.decision.action.value != "allow"
    else:
        assert risk < 0.2, risk
        assert report.decision.action.value == "allow"
