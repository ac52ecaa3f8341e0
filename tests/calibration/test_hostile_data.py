"""Hostile dataset files: every one gives a DataError naming the file and line, never a crash.

Deep nesting used to escape as RecursionError; NaN / Infinity literals and overlong lines used to
load silently; a CSV field over the csv module's limit escaped as ``_csv.Error``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import calibration.adapters._common as common
from calibration.data import DataError, load_dataset

GOOD = json.dumps({"id": "a", "response": "fine", "labels": {"fabrication": 1}})
LINE_FORMATS = ["jsonl", "ragtruth", "halueval-qa", "wice", "anthropic-sycophancy"]
DOCUMENT_FORMATS = ["summedits", "ai-liar"]


def jsonl(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def only_problem(exc: pytest.ExceptionInfo[DataError]) -> str:
    assert len(exc.value.problems) == 1, exc.value.problems
    return str(exc.value.problems[0])


@pytest.mark.parametrize("fmt", LINE_FORMATS)
@pytest.mark.parametrize("line", ["[" * 100_000, '{"a":' * 100_000, "[" * 500 + "]" * 500])
def test_deep_nesting_in_a_line_is_a_data_error(tmp_path: Path, fmt: str, line: str) -> None:
    path = jsonl(tmp_path, GOOD, line)
    with pytest.raises(DataError) as exc:
        load_dataset(path, fmt)
    problem = next(p for p in exc.value.problems if p.line == 2)
    assert problem.path == str(path)
    assert "nested deeper than 64 levels" in problem.message


@pytest.mark.parametrize("fmt", DOCUMENT_FORMATS)
def test_deep_nesting_in_a_document_is_a_data_error(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "data.json"
    path.write_text("[" * 100_000, encoding="utf-8")
    with pytest.raises(DataError) as exc:
        load_dataset(path, fmt)
    assert only_problem(exc) == f"{path}: nested deeper than 64 levels of arrays / objects"


def test_nesting_within_the_bound_loads(tmp_path: Path) -> None:
    nested = json.loads("[" * 60 + "]" * 60)
    line = json.dumps({"id": "b", "response": "r", "meta": {"deep": nested}})
    assert [e.id for e in load_dataset(jsonl(tmp_path, GOOD, line))] == ["a", "b"]


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("NaN", "NaN is not valid JSON"),
        ("Infinity", "Infinity is not valid JSON"),
        ("-Infinity", "-Infinity is not valid JSON"),
        ("1e999", "number 1e999 is out of range"),
    ],
)
@pytest.mark.parametrize("where", ["labels", "meta"])
def test_non_finite_literals_are_refused(
    tmp_path: Path, literal: str, message: str, where: str
) -> None:
    field = '"labels": {"fabrication": %s}' if where == "labels" else '"meta": {"x": %s}'
    line = '{"id": "b", "response": "r", ' + field % literal + "}"
    path = jsonl(tmp_path, GOOD, line)
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert only_problem(exc).startswith(f"{path}:2: {message}")
    # strict=False skips the bad record and keeps the good one
    assert [e.id for e in load_dataset(path, strict=False)] == ["a"]


@pytest.mark.parametrize("fmt", DOCUMENT_FORMATS)
def test_non_finite_literal_in_a_document(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "data.json"
    path.write_text('[{"x": NaN}]', encoding="utf-8")
    with pytest.raises(DataError, match="NaN is not valid JSON"):
        load_dataset(path, fmt)


def test_overlong_line_is_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "MAX_LINE_BYTES", 1000)
    long_line = json.dumps({"id": "long", "response": "x" * 5000})
    after = json.dumps({"id": "c", "response": "after"})
    path = jsonl(tmp_path, GOOD, long_line, after)
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    assert only_problem(exc) == f"{path}:2: line longer than 1,000 bytes"
    # the line numbers after the skipped line stay right
    with pytest.raises(DataError, match=r"data.jsonl:3: invalid JSON"):
        load_dataset(jsonl(tmp_path, GOOD, long_line, "{"))
    assert [e.id for e in load_dataset(jsonl(tmp_path, GOOD, long_line, after), strict=False)] == [
        "a",
        "c",
    ]


def test_a_line_exactly_at_the_bound_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = json.dumps({"id": "b", "response": "y" * 100})
    monkeypatch.setattr(common, "MAX_LINE_BYTES", len(line))
    path = tmp_path / "data.jsonl"
    path.write_bytes(line.encode() + b"\n" + line.replace('"b"', '"c"').encode())  # no final \n
    assert [e.id for e in load_dataset(path)] == ["b", "c"]


@pytest.mark.parametrize("fmt", DOCUMENT_FORMATS)
def test_oversized_document_is_refused(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "MAX_DOCUMENT_BYTES", 1 << 20)
    path = tmp_path / "data.json"
    path.write_text("[" + ", ".join(["0"] * 400_000) + "]", encoding="utf-8")
    with pytest.raises(DataError, match="larger than 1 MiB"):
        load_dataset(path, fmt)


def test_invalid_utf8_and_a_bom_inside_the_file_name_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"  # a BOM on line 1 is allowed
        + GOOD.encode()
        + b'\n{"id": "b", "response": "caf\xe9"}\n'
        + b"\xef\xbb\xbf"  # on a later line (concatenated files) it is not
        + GOOD.replace('"a"', '"c"').encode()
        + b"\n"
    )
    with pytest.raises(DataError) as exc:
        load_dataset(path)
    lines = {p.line: p.message for p in exc.value.problems}
    assert set(lines) == {2, 3}
    assert lines[2].startswith("invalid UTF-8 (byte 0xe9 at column")
    assert "BOM" in lines[3]


def test_csv_field_over_the_csv_limit_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "TruthfulQA.csv"
    path.write_text(
        "Type,Category,Question,Correct Answers,Incorrect Answers\n"
        "A,B,Is it?,Yes,No\n"
        f'A,B,"{"x" * 200_000}",Yes,No\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError) as exc:
        load_dataset(path, "truthfulqa")
    assert only_problem(exc).startswith(f"{path}:3: malformed CSV: field larger than field limit")
