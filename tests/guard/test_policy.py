"""The policy, tested with a table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scope_guard.errors import ConfigError, InputError
from scope_guard.policy import Policy, RiskThresholds
from scope_guard.types import Action

RULES = {
    "fabrication": RiskThresholds(warn=0.3, regenerate=0.5, fallback=0.8, block=0.95),
    "sycophancy": RiskThresholds(warn=0.6, regenerate=0.9),
}


@pytest.mark.parametrize(
    ("scores", "action", "n_reasons"),
    [
        ({}, Action.ALLOW, 0),
        ({"fabrication": 0.1, "sycophancy": 0.1}, Action.ALLOW, 0),
        ({"fabrication": 0.3}, Action.WARN, 1),  # thresholds are inclusive
        ({"fabrication": 0.29999}, Action.ALLOW, 0),
        ({"fabrication": 0.5}, Action.REGENERATE, 1),
        ({"fabrication": 0.85}, Action.FALLBACK, 1),
        ({"fabrication": 0.95}, Action.BLOCK, 1),
        ({"fabrication": 0.4, "sycophancy": 0.95}, Action.REGENERATE, 2),  # most severe wins
        ({"fabrication": 0.99, "sycophancy": 0.7}, Action.BLOCK, 2),
        ({"deception": 1.0}, Action.ALLOW, 0),  # no rule for deception: reported, not acted on
    ],
)
def test_decision_table(scores, action, n_reasons):
    decision = Policy(RULES).decide(scores)
    assert decision.action is action
    assert len(decision.reasons) == n_reasons


def test_reasons_name_risk_score_and_threshold():
    decision = Policy(RULES).decide({"fabrication": 0.61})
    assert decision.reasons == ["fabrication 0.61 >= regenerate 0.50"]
    assert str(decision) == "regenerate: fabrication 0.61 >= regenerate 0.50"


@pytest.mark.parametrize(
    ("t", "warn", "regenerate", "fallback"),
    [(0.4, 0.2, 0.4, 0.9), (0.9, 0.45, 0.9, 0.95), (0.0, 0.0, 0.0, 0.9), (1.0, 0.5, 1.0, 1.0)],
)
def test_defaults_from_calibrated_threshold(t, warn, regenerate, fallback):
    rule = RiskThresholds.from_calibrated(t)
    assert (rule.warn, rule.regenerate, rule.fallback, rule.block) == (
        pytest.approx(warn),
        pytest.approx(regenerate),
        pytest.approx(fallback),
        None,
    )


def test_thresholds_are_validated():
    with pytest.raises(ValidationError, match="below the milder"):
        RiskThresholds(warn=0.6, regenerate=0.5)
    with pytest.raises(ValidationError, match="not in"):
        RiskThresholds(warn=1.5)
    with pytest.raises(ValidationError):
        RiskThresholds(warm=0.5)  # a typo is an error, not a silent default
    assert Policy({"fabrication": {"warn": 0.2}}).decide({"fabrication": 0.3}).action is Action.WARN


def test_monitor_only_never_acts():
    assert Policy.monitor_only().decide({"fabrication": 1.0}).action is Action.ALLOW


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("risk", ["fabrication", "deception"])  # with a rule, and without
def test_non_finite_scores_are_refused(bad, risk):
    # NaN compares false with every threshold: accepted, it would allow silently
    with pytest.raises(InputError, match=risk):
        Policy(RULES).decide({"sycophancy": 0.1, risk: bad})


# ---------------------------------------------------------------------- no context documents
@pytest.mark.parametrize(
    ("mode", "scores", "action"),
    [
        ("warn", {"fabrication": 1.0}, Action.WARN),  # would be block: warned, not acted on
        ("warn", {"fabrication": 0.0}, Action.WARN),  # an unchecked answer is still warned about
        ("assess", {"fabrication": 1.0}, Action.BLOCK),
        ("assess", {"fabrication": 0.0}, Action.ALLOW),
        ("fallback", {"fabrication": 0.0}, Action.FALLBACK),
        ("fallback", {"fabrication": 0.99}, Action.BLOCK),  # at least fallback
        ("block", {"fabrication": 0.0}, Action.BLOCK),
    ],
)
def test_no_context_table(mode, scores, action):
    decision = Policy(RULES, no_context=mode).decide(scores, no_context="nothing retrieved")
    assert decision.action is action
    assert decision.reasons[0].startswith("no context: nothing retrieved")


def test_no_context_defaults_to_warn_and_holds_the_scores_reasons():
    decision = Policy(RULES).decide({"fabrication": 0.97}, no_context="no documents")
    assert decision.action is Action.WARN
    assert decision.reasons[1] == "fabrication 0.97 >= block 0.95 (not acted on without context)"
    assert Policy(RULES).decide({"fabrication": 0.97}).action is Action.BLOCK  # with context


def test_no_context_setting_is_validated():
    with pytest.raises(ConfigError, match="no_context must be one of"):
        Policy(RULES, no_context="ignore")  # type: ignore[arg-type]
    assert Policy.monitor_only().decide({}, no_context="x").action is Action.ALLOW
