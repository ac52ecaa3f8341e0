"""``scope-guard score``: the weight-free guard and a bundle, JSONL and CSV, bad rows, failures."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from synthetic_rag import synthetic_rag

from calibration.adapters.jsonl import write_jsonl
from calibration.data import LabeledDataset
from scope_guard.cli.main import main
from scope_guard.errors import InputError
from scope_guard.guard import ScopeGuard

DATA = synthetic_rag(n_sources=5)  # 20 rows, half fabricated


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_jsonl(DATA.examples, tmp_path / "rows.jsonl")


def score(*args: str | Path) -> int:
    return main(["score", *map(str, args), "--no-progress"])


def summary(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out)


def test_score_is_listed_by_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert re.search(r"^\s+score\s+score a file of exchanges", capsys.readouterr().out, re.M)
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = capsys.readouterr().out
    assert all(
        opt in text for opt in ("--bundle", "--out", "--risk-log", "--skip-errors", "--json")
    )


def test_weight_free_guard_jsonl(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, log = tmp_path / "scores.jsonl", tmp_path / "risk.jsonl"
    assert score(data, "--out", out, "--risk-log", log, "--json") == 0
    info = summary(capsys)
    rows = jsonl_rows(out)
    assert [r["id"] for r in rows] == [e.id for e in DATA]
    assert info["n"] == info["scored"] == 20
    assert (info["skipped"], info["refused"], info["failures"]) == (0, 0, 0)
    assert info["guard"] == "weight-free"
    assert info["risks"] == ["fabrication"]
    assert sum(info["actions"].values()) == 20
    assert info["actions"] == {a: sum(r["action"] == a for r in rows) for a in info["actions"]}
    by_label = {0: [], 1: []}
    for row, example in zip(rows, DATA, strict=True):
        assert row["calibrated"] == {"fabrication": False}  # the heuristic is not calibrated
        assert row["labels"] == {"fabrication": example.labels["fabrication"]}
        by_label[example.labels["fabrication"]].append(row["scores"]["fabrication"])
        for claim in row["flagged_claims"]:  # spans index the response
            assert example.response[claim["start"] : claim["end"]] == claim["text"]
    assert min(by_label[1]) > max(by_label[0])  # the planted fabrications score higher
    assert all(r["flagged_claims"] for r in rows if r["labels"]["fabrication"] == 1)
    logged = jsonl_rows(log)
    assert [r["request_id"] for r in logged] == [e.id for e in DATA]


def test_csv_by_extension_and_by_option(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores.csv"
    assert score(data, "--out", out) == 0
    assert "scored 20 rows (fabrication)" in capsys.readouterr().out
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    assert {
        "id",
        "action",
        "score_fabrication",
        "calibrated_fabrication",
        "flagged_fabrication",
        "label_fabrication",
        "flagged_claims",
        "reasons",
        "error",
    } <= set(rows[0])
    fabricated = [r for r in rows if r["label_fabrication"] == "1"]
    assert all(json.loads(r["flagged_claims"]) for r in fabricated)
    assert all(float(r["score_fabrication"]) >= 0.5 for r in fabricated)
    other = tmp_path / "scores.txt"
    assert score(data, "--out", other, "--output-format", "csv") == 0
    assert other.read_text().startswith("id,source,action,")
    assert score(data, "--out", tmp_path / "scores.parquet") == 2
    assert "name it .jsonl or .csv" in capsys.readouterr().err


def test_csv_cells_that_would_be_formulas_are_quoted(tmp_path: Path) -> None:
    example = DATA[1].model_copy(update={"id": "=HYPERLINK(1)"})
    data = write_jsonl([example], tmp_path / "rows.jsonl")
    out = tmp_path / "scores.csv"
    assert score(data, "--out", out) == 0
    with out.open(newline="", encoding="utf-8") as fh:
        (row,) = csv.DictReader(fh)
    assert row["id"] == "'=HYPERLINK(1)"


def test_other_formats_are_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "qa_data.json"
    record = {
        "knowledge": "The bridge of Ulmara opened in 1901.",
        "question": "When did the bridge of Ulmara open?",
        "right_answer": "In 1901.",
        "hallucinated_answer": "It opened in 1957 after Oren Quist designed it.",
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    assert score(path, "--format", "halueval-qa", "--out", out, "--json") == 0
    assert summary(capsys)["scored"] == 2
    right, wrong = jsonl_rows(out)
    assert right["scores"]["fabrication"] < wrong["scores"]["fabrication"]


BAD_LINES = [
    '{"id": "ok", "response": "The bridge opened in 1901.", "contexts": ["It opened in 1901."]}',
    '{"id": "no-response"}',
    "[" * 100_000,
    '{"id": "ok2", "response": "Fine.", "meta": {"x": NaN}}',
]


def test_malformed_rows_are_refused_naming_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(BAD_LINES) + "\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    assert score(data, "--out", out) == 2
    err = capsys.readouterr().err
    assert f"{data}:2: response: Field required" in err
    assert f"{data}:3: nested deeper than" in err
    assert f"{data}:4: NaN is not valid JSON" in err
    assert not out.exists()


def test_skip_errors_writes_error_rows_and_scores_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(BAD_LINES) + "\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    assert score(data, "--out", out, "--skip-errors", "--json") == 0
    info = summary(capsys)
    assert (info["n"], info["scored"], info["skipped"]) == (4, 1, 3)
    rows = jsonl_rows(out)
    errors = [r for r in rows if r["error"]]
    assert [r["source"] for r in errors] == [f"{data}:2", f"{data}:3", f"{data}:4"]
    assert all(r["action"] is None and r["scores"] == {} for r in errors)
    (scored,) = [r for r in rows if not r["error"]]
    assert scored["id"] == "ok"
    assert scored["action"] == "allow"


def test_rows_the_guard_refuses_or_fails_on(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ScopeGuard.assess_batch
    refused, failing = DATA[2].id, DATA[5].id

    def assess_batch(self: ScopeGuard, exchanges: Any, **kwargs: Any) -> Any:
        if any(e["request_id"] == refused for e in exchanges):
            msg = "meta too large"
            raise InputError(msg)
        return original(self, exchanges, **kwargs)

    def check(self: Any, response: str, *args: Any, **kwargs: Any) -> Any:
        if response == DATA[5].response:
            msg = "grounding broke"
            raise RuntimeError(msg)
        return check_original(self, response, *args, **kwargs)

    from detectors.grounding import GroundingDetector

    check_original = GroundingDetector.check
    monkeypatch.setattr(ScopeGuard, "assess_batch", assess_batch)
    monkeypatch.setattr(GroundingDetector, "check", check)
    out = tmp_path / "scores.jsonl"
    assert score(data, "--out", out, "--json") == 1  # some row has no real score
    info = summary(capsys)
    assert (info["refused"], info["failures"], info["scored"]) == (1, 1, 19)
    rows = {r["id"]: r for r in jsonl_rows(out)}
    assert len(rows) == 20
    assert rows[refused]["error"] == "meta too large"
    assert rows[refused]["action"] is None
    assert "RuntimeError: grounding broke" in rows[failing]["error"]
    assert rows[failing]["action"] == "allow"  # the guard fails open by default
    assert all(not r["error"] for i, r in rows.items() if i not in (refused, failing))


def test_paths_that_would_clobber_are_refused(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = data.read_bytes()
    out_json = data.with_suffix(".jsonl")
    assert score(data, "--out", out_json) == 2
    assert "is the input itself" in capsys.readouterr().err
    assert data.read_bytes() == before
    assert score(data, "--out", tmp_path) == 2
    assert "is a folder" in capsys.readouterr().err
    log = tmp_path / "same.jsonl"
    assert score(data, "--out", log, "--risk-log", log) == 2
    assert "is the risk log too" in capsys.readouterr().err
    assert score(data, "--out", tmp_path / "s.jsonl", "--reader", "miniature") == 2
    assert "--reader needs --bundle" in capsys.readouterr().err


# --- with a bundle -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_in_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle calibrated with the miniature reader: SAE probe, raw baseline, grounding."""
    from calibration.pipeline import CalibrationSettings, calibrate
    from detectors.grounding import GroundingDetector
    from scope_guard.reader import Reader
    from scope_guard.sae import load_sae
    from scope_guard.stand_in import miniature_sae_path

    result = calibrate(
        synthetic_rag(n_sources=12),
        CalibrationSettings(risk="fabrication", n_bootstrap=10, n_splits=3),
        reader=Reader.miniature(["resid_post@3"]),
        saes={"resid_post@3": load_sae(miniature_sae_path())},
        grounding=GroundingDetector(),
        progress=False,
    )
    path = tmp_path_factory.mktemp("bundle")
    result.bundle.save(path)
    return path


def test_bundle_scores_match_the_guard_in_batched_reads(
    stand_in_bundle: Path,
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scope_guard.reader import Reader

    sizes: list[int] = []
    read_batch = Reader.read_batch

    def counting(self: Reader, pairs: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(pairs))
        return read_batch(self, pairs, *args, **kwargs)

    monkeypatch.setattr(Reader, "read_batch", counting)
    out = tmp_path / "scores.jsonl"
    args = ["--bundle", stand_in_bundle, "--out", out, "--batch-size", "4", "--json"]
    assert score(data, *args) == 0
    info = summary(capsys)
    assert info["guard"] == "bundle"
    assert info["stand_in"] is True
    assert sizes == [20]  # one batched call for the 20 rows (the reader splits by 4 inside)
    rows = jsonl_rows(out)
    guard = ScopeGuard.from_bundle(stand_in_bundle, token_risk=False)
    expected = [guard.assess(_exchange(e)) for e in DATA]
    for row, report in zip(rows, expected, strict=True):
        assert row["scores"]["fabrication"] == pytest.approx(report.scores["fabrication"], rel=1e-4)
        assert row["action"] == report.decision.action.value
        assert row["calibrated"] == {"fabrication": True}
        assert row["stand_in"] is True
        assert {d["detector"] for d in row["detectors"]} == {"fabrication", "fabrication-raw"}
        primary = next(d for d in row["detectors"] if d["detector"] == "fabrication")
        assert row["flagged"] == {"fabrication": primary["flagged"]}


def _exchange(example: Any) -> dict[str, Any]:
    return {
        "request_id": example.id,
        "question": example.question,
        "contexts": example.contexts,
        "response": example.response,
    }


def test_bundle_needs_its_reader_where_it_says(
    stand_in_bundle: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert score(data, "--bundle", tmp_path / "nothing", "--out", tmp_path / "s.jsonl") == 2
    assert "not a detector bundle" in capsys.readouterr().err


def test_unlabeled_rows_are_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unlabeled = LabeledDataset(e.model_copy(update={"labels": {}}) for e in DATA[:3])
    data = write_jsonl(unlabeled, tmp_path / "rows.jsonl")
    out = tmp_path / "scores.csv"
    assert score(data, "--out", out, "--limit", "2", "--json") == 0
    assert summary(capsys)["scored"] == 2
    with out.open(newline="", encoding="utf-8") as fh:
        assert [r["label_fabrication"] for r in csv.DictReader(fh)] == ["", ""]
