"""Labeled examples, the dataset container, the default prompt and our JSONL reader."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_builders import example, write_lines
from pydantic import ValidationError

from calibration.adapters.jsonl import write_jsonl
from calibration.data import (
    ClassBalance,
    DataError,
    LabeledDataset,
    LabeledExample,
    load_dataset,
    prompt_of,
    read_jsonl,
    render_prompt,
)
from scope_guard.errors import ConfigError, InputError
from scope_guard.risks import Risk

RESPONSE = "The moon of Zorb is teal."


def _line(**fields: object) -> str:
    base: dict[str, object] = {"id": "x", "response": RESPONSE}
    base.update(fields)
    return json.dumps(base)


# --- the example model -------------------------------------------------------------------------


def test_example_defaults_label_and_group_key() -> None:
    e = LabeledExample(id="a", response="yes")
    assert (e.question, e.contexts, e.prompt, e.group) == ("", [], None, None)
    assert (e.labels, e.spans, e.meta) == ({}, [], {})
    assert e.group_key == "a"
    assert e.label("fabrication") is None
    g = example("b", group="doc-1", labels={"Fabrication": True, "deception": None})
    assert g.group_key == "doc-1"
    assert g.labels == {Risk.FABRICATION: 1}  # keys parsed case-insensitively; null = unlabeled
    assert g.label(Risk.FABRICATION) == 1
    assert g.label("deception") is None


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"response": "   "}, "must not be empty"),
        ({"id": ""}, "must not be empty"),
        ({"labels": {"fabrication": 2}}, "must be 0 or 1, got 2"),
        ({"labels": {"fabrication": 0.5}}, "must be 0 or 1"),
        ({"labels": {"lying": 1}}, "unknown risk 'lying'"),
        ({"spans": [{"start": 3, "end": 3, "risk": "fabrication"}]}, "greater than start"),
        ({"spans": [{"start": -1, "end": 3, "risk": "fabrication"}]}, "greater than or equal"),
        ({"spans": [{"start": 0, "end": 99, "risk": "fabrication"}]}, "past the response (25"),
        (
            {
                "spans": [{"start": 0, "end": 3, "risk": "fabrication"}],
                "labels": {"fabrication": 0},
            },
            "labeled fabrication=0",
        ),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"group": ""}, "at least 1 character"),
    ],
)
def test_example_rejects(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        LabeledExample.model_validate({"id": "bad", "response": RESPONSE, **fields})
    assert fragment in str(info.value)


def test_example_is_frozen() -> None:
    e = example()
    with pytest.raises(ValidationError):
        e.response = "changed"


# --- the default prompt ------------------------------------------------------------------------


def test_render_prompt_layout() -> None:
    assert render_prompt("Why?", ["A.", "B."]) == (
        "Answer using only the context below.\n\nContext:\n[1] A.\n\n[2] B.\n\nQuestion: Why?"
    )
    assert render_prompt("", ["A."]) == "Answer using only the context below.\n\nContext:\n[1] A."
    assert render_prompt("Why?", []) == "Why?"


def test_prompt_of_prefers_the_recorded_prompt() -> None:
    assert prompt_of(example(prompt="exact prompt")) == "exact prompt"
    e = example()
    assert prompt_of(e) == render_prompt(e.question, e.contexts)


# --- the dataset -------------------------------------------------------------------------------


def _dataset() -> LabeledDataset:
    return LabeledDataset(
        [
            example("a", labels={"fabrication": 1}, group="g1", meta={"task": "QA", "tags": [1]}),
            example("b", labels={"fabrication": 0, "deception": 1}, group="g1"),
            example("c", labels={"fabrication": 0}, meta={"task": "Summary", "tags": [2]}),
            example("d", labels={"deception": 0}),
        ],
        source="mem",
        format="jsonl",
    )


def test_class_balance_counts() -> None:
    balance = _dataset().class_balance()
    assert balance[Risk.FABRICATION] == ClassBalance(3, 1, 2)
    assert balance[Risk.DECEPTION] == ClassBalance(2, 1, 1)
    assert balance[Risk.SYCOPHANCY] == ClassBalance(0, 0, 0)
    assert balance[Risk.FABRICATION].positive_rate == pytest.approx(1 / 3)
    assert math.isnan(balance[Risk.SYCOPHANCY].positive_rate)


def test_y_requires_every_label_and_with_label_selects() -> None:
    ds = _dataset()
    with pytest.raises(ConfigError, match="1 of 4 examples have no fabrication label"):
        ds.y("fabrication")
    fab = ds.with_label("fabrication")
    assert [e.id for e in fab] == ["a", "b", "c"]
    y = fab.y(Risk.FABRICATION)
    assert y.dtype == np.int64
    assert y.tolist() == [1, 0, 0]
    assert ds.with_label("deception").y("deception").tolist() == [1, 0]
    assert len(ds.with_label("sycophancy")) == 0


def test_groups_and_field_are_one_dimensional_object_arrays() -> None:
    ds = _dataset()
    assert ds.groups().tolist() == ["g1", "g1", "c", "d"]
    tags = ds.field("tags")  # equal-length lists must not become a 2-d array
    assert tags.shape == (4,)
    assert tags.dtype == object
    assert tags.tolist() == [[1], None, [2], None]
    assert ds.field("task").tolist() == ["QA", None, "Summary", None]


def test_sequence_protocol_subset_and_slices() -> None:
    ds = _dataset()
    assert len(ds) == 4
    assert ds[1].id == "b"
    assert ds[-1].id == "d"
    assert isinstance(ds[1:3], LabeledDataset)
    assert [e.id for e in ds[1:3]] == ["b", "c"]
    assert [e.id for e in ds.subset([3, 0, 0])] == ["d", "a", "a"]
    assert [e.id for e in ds.subset(np.array([True, False, True, False]))] == ["a", "c"]
    assert len(ds.subset([])) == 0
    assert ds.subset([0]).source == "mem"
    with pytest.raises(InputError):
        ds.subset(np.array([0.5]))
    with pytest.raises(InputError):
        ds.subset(np.array([True, False]))
    with pytest.raises(InputError, match="not a LabeledExample"):
        LabeledDataset([{"id": "a"}])  # type: ignore[list-item]


def test_content_hash_is_stable_order_sensitive_and_ignores_source() -> None:
    ds = _dataset()
    again = LabeledDataset(list(ds), source="elsewhere", format="ragtruth")
    assert ds.content_hash() == again.content_hash()
    assert len(ds.content_hash()) == 64
    assert ds.subset([1, 0, 2, 3]).content_hash() != ds.content_hash()
    changed = [*ds.examples[:3], example("d", labels={"deception": 1})]
    assert LabeledDataset(changed).content_hash() != ds.content_hash()


# --- JSONL -------------------------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path: Path) -> None:
    ds = _dataset()
    spanned = example(
        "s",
        response="Zorb has 3 moons.",
        labels={"fabrication": 1},
        spans=[{"start": 9, "end": 10, "risk": "fabrication"}],
        prompt="p",
        question="ü?",
    )
    path = write_jsonl([*ds, spanned], tmp_path / "data.jsonl")
    back = read_jsonl(path)
    assert list(back) == [*ds, spanned]
    assert back.content_hash() == LabeledDataset([*ds, spanned]).content_hash()
    assert back.format == "jsonl"
    assert back.source == str(path)


def test_jsonl_reports_every_bad_record_with_its_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl",
        [
            _line(id="ok1"),
            "{not json",
            "",  # blank lines are skipped, and still counted
            "[1, 2]",
            _line(id="r", response=" "),
            _line(id="l", labels={"fabrication": 2}),
            _line(id="s", labels={"fabrication": 1}, spans=[{"start": 0, "end": 2, "risk": "f"}]),
            _line(
                id="o",
                labels={"fabrication": 1},
                spans=[{"start": 0, "end": 99, "risk": "FABRICATION"}],
            ),
            _line(id="t", contexts=["fine", 7]),
            b'{"id": "u", "response": "caf\xe9"}',
            _line(id="ok2", extra=1),
            _line(id="ok3"),
        ],
    )
    with pytest.raises(DataError) as info:
        read_jsonl(path)
    problems = info.value.problems
    assert [p.line for p in problems] == [2, 4, 5, 6, 7, 8, 9, 10, 11]
    assert all(p.path == str(path) for p in problems)
    text = str(info.value)
    assert text.startswith("9 problems in labeled data:")
    assert f"{path}:2: invalid JSON" in text
    assert f"{path}:4: expected a JSON object, got list" in text
    assert f"{path}:5: response: must not be empty or blank" in text
    assert f"{path}:6: labels: Value error, label for fabrication" not in text  # prefix dropped
    assert f"{path}:6: labels: label for fabrication must be 0 or 1, got 2" in text
    assert f"{path}:7: spans[0].risk: unknown risk 'f'" in text
    assert f"{path}:8: spans[0] ends at 99, past the response (25 characters)" in text
    assert f"{path}:9: contexts[1]: Input should be a valid string" in text
    assert f"{path}:10: invalid UTF-8 (byte 0xe9" in text
    assert f"{path}:11: extra: Extra inputs are not permitted" in text


def test_jsonl_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [_line(id="a"), _line(id="b"), _line(id="a")])
    with pytest.raises(DataError, match=r"d\.jsonl:3: duplicate id 'a' \(also at line 1\)"):
        read_jsonl(path)


def test_data_error_lists_twenty_and_counts_the_rest(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "many.jsonl", ["{"] * 25)
    with pytest.raises(DataError) as info:
        read_jsonl(path)
    assert len(info.value.problems) == 25
    text = str(info.value)
    assert text.count("invalid JSON") == 20
    assert "... and 5 more" in text
    assert isinstance(info.value, InputError)


def test_jsonl_lenient_mode_skips_bad_records(tmp_path: Path, caplog) -> None:
    path = write_lines(tmp_path / "m.jsonl", [_line(id="a"), "{", _line(id="b")])
    with caplog.at_level(logging.WARNING):
        ds = read_jsonl(path, strict=False)
    assert [e.id for e in ds] == ["a", "b"]
    assert "skipped 1 bad records" in caplog.text


def test_jsonl_missing_empty_bom_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        read_jsonl(tmp_path / "nope.jsonl")
    empty = write_lines(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(DataError, match="no labeled examples"):
        read_jsonl(empty)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + _line(id="z").encode() + b"\r\n")
    assert read_jsonl(bom)[0].id == "z"
    folder = tmp_path / "folder"
    folder.mkdir()
    write_lines(folder / "1.jsonl", [_line(id="a")])
    write_lines(folder / "2.jsonl", [_line(id="a")])
    with pytest.raises(DataError, match=r"duplicate id 'a' \(also at .*1\.jsonl:1\)"):
        read_jsonl(folder)


def test_loading_logs_the_class_balance(tmp_path: Path, caplog) -> None:
    path = write_jsonl(_dataset(), tmp_path / "b.jsonl")
    with caplog.at_level(logging.INFO, logger="calibration"):
        read_jsonl(path)
    assert "4 examples" in caplog.text
    assert "fabrication: 3 labeled, 1 positive (33.3%)" in caplog.text
    assert "deception: 2 labeled, 1 positive (50.0%)" in caplog.text
    assert "sycophancy" not in caplog.text


def test_load_dataset_jsonl_limit_and_bad_options(tmp_path: Path) -> None:
    path = write_jsonl(_dataset(), tmp_path / "b.jsonl")
    assert [e.id for e in load_dataset(path, limit=2)] == ["a", "b"]
    assert len(load_dataset(str(path), "JSONL", limit=100)) == 4
    with pytest.raises(ConfigError, match="limit must be a positive int"):
        load_dataset(path, limit=0)
    with pytest.raises(ConfigError, match="does not take options \\['colour'\\]; it takes: strict"):
        load_dataset(path, colour="red")


def test_import_calibration_exports_the_data_api_without_torch() -> None:
    code = (
        "import sys, calibration\n"
        "from calibration import LabeledDataset, LabeledExample, load_dataset, read_jsonl\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
