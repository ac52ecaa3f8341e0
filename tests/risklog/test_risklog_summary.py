"""Summary numbers on seven hand-made records, checked by hand."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from risklog_builders import fixed_records

from scope_guard.risklog import quantile, summarize

D1, D2 = date(2025, 3, 1), date(2025, 3, 2)


def test_quantile_linear_interpolation():
    values = [0.1, 0.3, 0.5, 0.9]
    assert quantile(values, 0.5) == pytest.approx(0.4)
    assert quantile(values, 0.9) == pytest.approx(0.78)
    assert quantile(values, 0.0) == 0.1
    assert quantile(values, 1.0) == 0.9
    assert quantile([2.0], 0.99) == 2.0
    assert math.isnan(quantile([], 0.5))
    for q in (0.5, 0.9, 0.99):
        assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))


def test_action_rates_overall_and_per_day():
    s = summarize(fixed_records())
    assert s.n_records == 7
    assert s.first == "2025-03-01T08:00:00Z"
    assert s.last == "2025-03-02T03:00:00Z"
    assert s.overall.counts == {"allow": 3, "warn": 1, "regenerate": 1, "fallback": 1, "block": 1}
    assert s.overall.rates["allow"] == pytest.approx(3 / 7)
    assert sum(s.overall.rates.values()) == pytest.approx(1.0)
    assert [d.day for d in s.per_day] == [D1, D2]
    day1, day2 = s.per_day
    assert (day1.total, day1.counts["allow"], day1.counts["warn"], day1.counts["block"]) == (
        4, 2, 1, 1,
    )  # fmt: skip
    assert day1.rates["allow"] == 0.5
    assert day1.counts["regenerate"] == 0
    assert day2.total == 3
    assert day2.counts == {"allow": 1, "warn": 0, "regenerate": 1, "fallback": 1, "block": 0}


def test_score_distributions_per_risk_and_day():
    stats = {(x.day, x.risk): x for x in summarize(fixed_records()).scores}
    assert list(stats) == [
        (D1, "fabrication"), (D1, "sycophancy"), (D2, "fabrication"), (D2, "sycophancy"),
    ]  # fmt: skip
    fab1 = stats[D1, "fabrication"]  # 0.1 0.3 0.5 0.9
    assert fab1.count == 4
    assert (fab1.mean, fab1.p50, fab1.p90, fab1.p99, fab1.max) == pytest.approx(
        (0.45, 0.4, 0.78, 0.888, 0.9)
    )
    syc1 = stats[D1, "sycophancy"]  # 0.1 0.2 0.3 (r4 has no sycophancy score)
    assert syc1.count == 3
    assert (syc1.mean, syc1.p50, syc1.p90, syc1.p99, syc1.max) == pytest.approx(
        (0.2, 0.2, 0.28, 0.298, 0.3)
    )
    fab2 = stats[D2, "fabrication"]  # 0.2 0.7
    assert (fab2.count, fab2.mean, fab2.p50, fab2.p90, fab2.p99, fab2.max) == pytest.approx(
        (2, 0.45, 0.45, 0.65, 0.695, 0.7)
    )
    syc2 = stats[D2, "sycophancy"]  # 0.05 0.95
    assert (syc2.count, syc2.mean, syc2.p90, syc2.max) == pytest.approx((2, 0.5, 0.86, 0.95))


def test_worst_requests_ordering():
    s = summarize(fixed_records(), top=3)
    assert [(w.request_id, w.attempt, w.risk, w.score) for w in s.worst] == [
        ("r5", 1, "sycophancy", 0.95),
        ("r3", 1, "fabrication", 0.9),
        ("r2", 1, "fabrication", 0.5),
    ]
    assert s.worst[0].action == "regenerate"
    assert s.worst[0].reasons == ["sycophancy 0.95 >= 0.80"]
    everything = summarize(fixed_records(), top=100).worst
    # r7 has no scores; r1 and r5#2 tie at 0.2: the older one first.
    assert [(w.request_id, w.attempt) for w in everything] == [
        ("r5", 1), ("r3", 1), ("r2", 1), ("r4", 1), ("r1", 1), ("r5", 2),
    ]  # fmt: skip
    assert summarize(fixed_records(), top=0).worst == []


def test_errors_and_stand_in_counts():
    s = summarize(fixed_records())
    assert s.n_errors == 2
    assert s.errors == {"reader OOM": 1, "bundle failed": 1}
    assert s.n_stand_in == 1


def test_empty_log():
    s = summarize([])
    assert (s.n_records, s.first, s.last, s.per_day, s.scores, s.worst) == (
        0, None, None, [], [], [],
    )  # fmt: skip
    assert s.overall.total == 0
    assert set(s.overall.rates.values()) == {0.0}


def test_to_json_is_plain_data():
    import json

    payload = summarize(fixed_records()).to_json()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["per_day"][0]["day"] == "2025-03-01"
    assert payload["scores"][0]["risk"] == "fabrication"
