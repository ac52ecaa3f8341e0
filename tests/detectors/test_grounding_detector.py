"""The grounding detector end to end: support order, structured contexts, embedders, bad inputs."""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
import pytest

from detectors.grounding import (
    FEATURE_NAMES,
    GroundingConfig,
    GroundingDetector,
    GroundingResult,
    split_context,
)
from scope_guard.errors import ConfigError, InputError

CONTEXT = (
    "The Golden Gate Bridge opened to traffic on May 27, 1937. It spans 1,280 metres between "
    "San Francisco and Marin County. The bridge was designed by Joseph Strauss and painted "
    "International Orange to stay visible in fog."
)


@pytest.fixture(scope="module")
def detector() -> GroundingDetector:
    return GroundingDetector()


def test_supported_paraphrase_beats_invention(detector: GroundingDetector) -> None:
    good = detector.check("The bridge, designed by Joseph Strauss, opened in 1937.", [CONTEXT])
    bad = detector.check(
        "The bridge, designed by Frank Lloyd Wright, cost $900 million in 1950.", [CONTEXT]
    )
    assert good.claims[0].support > 0.6
    assert bad.claims[0].support < 0.2
    assert good.risk < 0.2 < 0.6 < bad.risk
    assert bad.claims[0].unsupported_numbers == ["$900 million", "1950"]
    assert bad.claims[0].unsupported_entities == ["Frank Lloyd Wright"]
    assert bad.claims[0].unsupported_spans  # the phrase holding the invention is located


def test_number_forms_count_as_supported(detector: GroundingDetector) -> None:
    res = detector.check("It spans 1280 metres and opened on May twenty-seven.", [CONTEXT])
    assert all(not c.unsupported_numbers for c in res.claims)


def test_best_passage_and_offsets(detector: GroundingDetector) -> None:
    res = detector.check(
        "It was painted International Orange for visibility in fog.", ["Unrelated text.", CONTEXT]
    )
    best = res.claims[0].best_passages[0]
    assert best.context_index == 1
    assert CONTEXT[best.start : best.end].startswith("The bridge was designed")
    assert 0.3 < best.score <= 1.0


def test_features_are_fixed_and_documented(detector: GroundingDetector) -> None:
    res = detector.check(
        "Based on the passages, the bridge opened in 1937. Is that all?",
        [CONTEXT],
        question="When?",
    )
    assert res.feature_names == FEATURE_NAMES
    assert len(res.features) == len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert all(math.isfinite(v) for v in res.features)
    feats = res.feature_dict()
    assert feats["n_claims"] == 1
    assert feats["n_non_claims"] == 2
    assert res.feature_array().shape == (len(FEATURE_NAMES),)
    assert GroundingResult.model_validate_json(res.model_dump_json()) == res


def test_json_record_becomes_one_passage_per_field() -> None:
    record = {
        "name": "Tinker's",
        "hours": {"Monday": "11:0-17:0"},
        "attributes": {"WiFi": "no", "OutdoorSeating": True},
    }
    text = "\n" + str(record) + "\nOverview:"
    passages = split_context(text)
    fields = [p.field for p in passages if p.field]
    assert fields == ["name", "hours.Monday", "attributes.WiFi", "attributes.OutdoorSeating"]
    assert passages[3].text == "attributes Outdoor Seating OutdoorSeating: yes"
    assert text[passages[0].start : passages[0].end].startswith("name")


def test_table_and_key_value_records() -> None:
    table = split_context("| Product | Price |\n|---|---|\n| Widget | $5 |\n| Gadget | $7 |")
    assert [p.text for p in table] == ["Product: Widget; Price: $5", "Product: Gadget; Price: $7"]
    kv = split_context("Name: Acme\nFounded: 1999\nEmployees: 250\n")
    assert [(p.field, p.value) for p in kv] == [
        ("Name", "Acme"),
        ("Founded", "1999"),
        ("Employees", "250"),
    ]


def test_structured_yes_no_fields_are_checked(detector: GroundingDetector) -> None:
    ctx = [
        {
            "name": "Cafe Uno",
            "attributes": {"WiFi": "no", "OutdoorSeating": True, "Music": None},
            "hours": "11:0-17:0",
        }
    ]
    ok = detector.check("Cafe Uno has outdoor seating but no WiFi, and is open 11 am to 5 pm.", ctx)
    bad = detector.check("Cafe Uno offers free WiFi and live music.", ctx)
    assert sum(len(c.field_conflicts) for c in ok.claims) == 0
    assert not any(c.unsupported_numbers for c in ok.claims)
    assert sorted(bad.claims[0].field_conflicts) == ["music", "wifi"]
    assert bad.risk > ok.risk


def test_empty_and_missing_inputs_give_defined_results(detector: GroundingDetector) -> None:
    for response in ["", "   \n\t "]:
        res = detector.check(response, [CONTEXT])
        assert (res.claims, res.risk) == ([], 0.0)
    none = detector.check("The bridge opened in 1937.", [])
    assert none.n_passages == 0
    assert none.claims[0].support == 0.0
    assert none.risk == 1.0
    assert detector.check("Opened in 1937.", ["  ", "\n"]).n_passages == 0
    assert detector.check("Opened in 1937.", CONTEXT).n_passages == 3  # a bare str is one context


def test_bad_types_and_sizes_raise_input_error(detector: GroundingDetector) -> None:
    with pytest.raises(InputError, match="response must be a str"):
        detector.check(42, [CONTEXT])  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"contexts\[1\]"):
        detector.check("x", ["ok", object()])
    small = GroundingDetector(config=GroundingConfig(max_response_chars=10, max_context_chars=20))
    with pytest.raises(InputError, match="limit of 10"):
        small.check("x" * 11, ["ok"])
    with pytest.raises(InputError, match="limit of 20"):
        small.check("ok", ["y" * 21])
    with pytest.raises(ConfigError, match="support_threshold"):
        GroundingConfig(support_threshold=2.0)
    with pytest.raises(ConfigError, match="embedder must be"):
        GroundingDetector(embedder=42)


def test_surrogates_keep_offsets(detector: GroundingDetector) -> None:
    response = "The bridge opened in 1937 \udce9. It is orange."
    res = detector.check(response, [CONTEXT + "\ud800"])
    assert [c.text for c in res.claims][1] == "It is orange."
    assert res.claims[1].start == response.index("It is")
    res.model_dump_json()  # encodable


def test_callable_and_langchain_embedders_and_cache() -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.array([[len(t), t.count("e") + 1.0, 1.0] for t in texts])

    det = GroundingDetector(embedder=embed)
    det.check("The bridge opened in 1937.", [CONTEXT])
    det.check("It spans 1,280 metres.", [CONTEXT])
    assert calls == [3, 1, 1]  # passages embedded once, then one batch of claims per response

    from langchain_core.embeddings import DeterministicFakeEmbedding

    res = GroundingDetector(embedder=DeterministicFakeEmbedding(size=16)).check(
        "It opened in 1937.", [CONTEXT]
    )
    assert len(res.claims[0].best_passages) == 3

    bad = GroundingDetector(embedder=lambda texts: np.ones((len(texts) + 1, 4)))
    with pytest.raises(InputError, match="embedder returned shape"):
        bad.check("x y z.", [CONTEXT])


def test_no_torch_import_and_linear_time(detector: GroundingDetector) -> None:
    sentence = "Officials in Springfield said the river rose 3 metres on Tuesday after heavy rain. "
    detector.check("Warm up.", ["Warm up text."])
    timings = []
    for n in (200, 1600):
        ctx = sentence * n
        best = float("inf")
        for _ in range(3):  # best of three: robust to a busy machine
            t0 = time.perf_counter()
            res = detector.check("The river rose 3 metres in Springfield.", [ctx])
            best = min(best, time.perf_counter() - t0)
        timings.append(best)
        assert res.claims[0].supported
    # 8x the input: linear growth is ~8x; quadratic would be ~64x.
    assert timings[1] < 20 * timings[0] + 0.5


def test_detector_import_does_not_load_torch() -> None:
    import subprocess

    code = (
        "import sys, detectors.grounding; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_result_round_trips_to_json(detector: GroundingDetector) -> None:
    res = detector.check("Joseph Strauss designed it.", [CONTEXT])
    data = json.loads(res.model_dump_json())
    assert data["claims"][0]["text"] == "Joseph Strauss designed it."


def test_known_number_with_another_attribute_is_mismatched(detector: GroundingDetector) -> None:
    ctx = (
        "Paitsel, a former agent, received 24 months in prison. The court heard from many "
        "witnesses. Bailey, a developer, was sentenced to 40 months in federal prison."
    )
    swapped = detector.check("Bailey, the developer, was sentenced to 24 months.", [ctx])
    right = detector.check("Paitsel, the former agent, received 24 months in prison.", [ctx])
    assert swapped.claims[0].unsupported_numbers == []  # 24 is in the context ...
    assert swapped.feature_dict()["mismatched_number_rate"] == 1.0  # ... but not Bailey's
    assert right.feature_dict()["mismatched_number_rate"] == 0.0


def test_local_coverage_sees_facts_joined_from_far_apart(detector: GroundingDetector) -> None:
    ctx = (
        "Anna Berg founded the bakery in Oslo. The shop sells rye bread daily. Prices rose last "
        "winter. Tourists visit in summer. The bakery closed its second branch in Bergen."
    )
    local = detector.check("Anna Berg founded the bakery in Oslo.", [ctx]).feature_dict()
    joined = detector.check("Anna Berg founded the second branch in Bergen.", [ctx]).feature_dict()
    assert local["local_coverage_min"] == 1.0
    assert joined["coverage_min"] == 1.0  # every word is somewhere in the context
    assert joined["local_coverage_min"] == 0.5  # but half of them five sentences away


def test_request_features_v2(detector: GroundingDetector) -> None:
    res = detector.check(
        "The bridge opened in 1937 to huge crowds of tourists.", [CONTEXT], question="When?"
    )
    feats = res.feature_dict()
    assert res.features_version == 4
    assert feats["has_question"] == 1.0
    assert feats["log_passages"] == pytest.approx(math.log1p(3))
    # 4 of the 10 words are in no context: "huge", "crowds", "tourists" and even "of".
    assert feats["novel_token_rate"] == pytest.approx(0.4)
    assert feats["novel_rate_top2"] == pytest.approx(feats["novel_rate_max"])  # one claim
    assert feats["any_unsupported_entity"] == 0.0
    instruction = detector.check("It opened in 1937.", [CONTEXT], question="Summarize the text:")
    assert instruction.feature_dict()["has_question"] == 0.0


def test_key_value_block_keeps_prose_lines_and_clock_times_are_not_keys() -> None:
    record = "Name: Acme Corp\nFounded: 1990\nCEO: Jane Doe\nAcme employs 500 engineers in Ohio."
    passages = split_context(record)
    assert [(p.field, p.text) for p in passages] == [
        ("Name", "Name: Acme Corp"),
        ("Founded", "Founded: 1990"),
        ("CEO", "CEO: Jane Doe"),
        (None, "Acme employs 500 engineers in Ohio."),
    ]
    assert record[passages[3].start : passages[3].end] == "Acme employs 500 engineers in Ohio."
    email = "From: a@example.com\nTo: b@example.com\nSubject: Q3\nRevenue grew 12% to $4.1 billion."
    assert split_context(email)[-1].text == "Revenue grew 12% to $4.1 billion."
    prose = "The meeting starts at 10:30 in room 4.\nLunch is at 12:15.\nThe talk ends at 17:00."
    assert [(p.field, p.text) for p in split_context(prose)] == [
        (None, "The meeting starts at 10:30 in room 4."),
        (None, "Lunch is at 12:15."),
        (None, "The talk ends at 17:00."),
    ]
    res = GroundingDetector().check("Acme employs 500 engineers in Ohio.", [record])
    assert res.claims[0].unsupported_numbers == []
    assert res.claims[0].support > 0.8


def test_deeply_nested_contexts_do_not_crash(detector: GroundingDetector) -> None:
    for depth in (990, 5_000, 100_000):
        text = "[" * depth + "1" + "]" * depth
        assert len(split_context(text)) == 1  # too deep for json: kept as prose
        assert detector.check("It is 1.", [text]).n_passages == 1
    record: dict[str, object] = {}
    node = record
    for _ in range(5_000):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    with pytest.raises(InputError, match=r"contexts\[0\] is a dict nested too deeply"):
        detector.check("It is ok.", [record])


def test_generic_field_prefixes_and_clause_bound_negation(detector: GroundingDetector) -> None:
    ctx = [{"attributes": {"BusinessAcceptsCreditCards": False}}]
    res = detector.check("The shop accepts credit cards.", ctx)
    assert res.claims[0].field_conflicts == ["acceptscreditcards"]
    cafe = [
        {
            "name": "Cafe Blue",
            "attributes": {"WiFi": "free", "BusinessParking": False, "OutdoorSeating": True},
        }
    ]
    cases = {
        "Cafe Blue has free WiFi and parking.": ["parking"],
        "There is no outdoor seating, but WiFi is free.": ["outdoorseating"],
        "Cafe Blue has no WiFi, but parking is available.": ["parking", "wifi"],
        "Cafe Blue offers WiFi but no parking.": [],
        "Cafe Blue has outdoor seating and no parking or valet.": [],
    }
    for text, expected in cases.items():
        assert sorted(detector.check(text, cafe).claims[0].field_conflicts) == expected, text
    unknown = [{"name": "Cafe Uno", "attributes": {"RestaurantsTakeOut": None}}]
    said = detector.check("Cafe Uno does not specify whether it offers takeout.", unknown)
    assert said.claims[0].field_conflicts == []  # agrees with the unknown value
    assert detector.check("Cafe Uno offers takeout.", unknown).claims[0].field_conflicts == [
        "takeout"
    ]


def test_years_are_exact_and_iso_months_are_words(detector: GroundingDetector) -> None:
    same = detector.check("The company was founded in 2020.", ["The company was founded in 2020."])
    off = detector.check("The company was founded in 2015.", ["The company was founded in 2020."])
    assert same.claims[0].unsupported_numbers == []
    assert off.claims[0].unsupported_numbers == ["2015"]
    assert off.claims[0].support < 0.5 < same.claims[0].support
    cold = detector.check("The temperature was -5 degrees.", ["The temperature was 5 degrees."])
    assert cold.claims[0].unsupported_numbers == ["-5"]
    iso = detector.check(
        "The event happened on 2022-01-16.", ["The event happened on January 16, 2022."]
    )
    assert iso.claims[0].unsupported_numbers == []
    assert iso.claims[0].support > 0.8
    wrong_month = detector.check(
        "The event happened on 2022-03-16.", ["The event happened on January 16, 2022."]
    )
    assert wrong_month.claims[0].unsupported_numbers == ["march"]


def test_claims_after_a_lead_in_or_beside_a_refusal_are_checked(
    detector: GroundingDetector,
) -> None:
    ctx = ["Acme was founded in 1990 in Ohio by Jane Doe."]
    for text in [
        "Sure! Here is the answer: Acme was founded in 1850 in Texas by John Smith.",
        "Absolutely, Acme was founded in 1850 by Napoleon Bonaparte.",
        "Acme was founded in 1850; the passages do not mention its revenue.",
    ]:
        res = detector.check(text, ctx)
        assert len(res.claims) == 1, text
        assert res.claims[0].unsupported_numbers == ["1850"], text
        assert res.risk > 0.3, text


def test_embedder_width_mismatch_is_an_input_error() -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.ones((len(texts), 4 if len(calls) == 1 else 6))

    det = GroundingDetector(embedder=embed)
    with pytest.raises(InputError, match="width 6 for the claims but 4 for the passages"):
        det.check("Paris is in France.", ["Paris is the capital of France."])
