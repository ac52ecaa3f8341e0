"""Reader features and scoring on Ray: a local runtime, the miniature reader, the local run as
the reference (same arrays, bit for bit), the cache and resume, and the typed failures.

Ray starts once per session (several seconds); each actor pool loads the reader once (a few
seconds more), so the pools are few: one interrupted and one resumed extraction, one
``calibrate --ray`` and one ``score --ray``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synthetic_rag import synthetic_rag

from calibration.adapters.jsonl import write_jsonl
from calibration.data import LabeledDataset, prompt_of
from calibration.extract import ChunkItem, ChunkRows, ReaderJob, extract_features
from calibration.feature_cache import text_key
from calibration.ray_extract import ReaderSpec, load_job
from calibration.ray_options import RayOptions, require_ray
from scope_guard.cli.main import main
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.features import Pooling
from scope_guard.reader import Reader
from scope_guard.sae import load_sae
from scope_guard.sites import Site
from scope_guard.stand_in import miniature_sae_path

SITE = Site.parse("resid_post@3")
CHUNK = 8


def varied(n_sources: int) -> LabeledDataset:
    """Synthetic rows of several lengths, so that chunks and batches pad differently."""
    base = synthetic_rag(n_sources=n_sources)
    rows = [
        ex.model_copy(update={"response": " ".join([ex.response] * (1 + i % 4))})
        for i, ex in enumerate(base)
    ]
    return LabeledDataset(rows)


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.miniature([SITE])


@pytest.fixture(scope="module")
def saes() -> dict[Site, Any]:
    return {SITE: load_sae(miniature_sae_path())}


class Recording:
    """A runner wrapper that records the keys it was sent and can stop after N chunks."""

    def __init__(self, inner: Any, stop_after: int | None = None) -> None:
        self.inner = inner
        self.stop_after = stop_after
        self.sent: list[str] = []

    def __call__(
        self, job: ReaderJob, chunks: Sequence[Sequence[ChunkItem]]
    ) -> Iterator[tuple[int, ChunkRows]]:
        self.sent = [item.key for chunk in chunks for item in chunk]
        for done, result in enumerate(self.inner(job, chunks), start=1):
            yield result
            if self.stop_after is not None and done >= self.stop_after:
                msg = "interrupted"
                raise KeyboardInterrupt(msg)


def assert_same(a: Any, b: Any) -> None:
    assert np.array_equal(a.raw[SITE], b.raw[SITE])
    left, right = a.sae[SITE], b.sae[SITE]
    assert np.array_equal(left.indptr, right.indptr)
    assert np.array_equal(left.indices, right.indices)
    assert np.array_equal(left.data, right.data)
    assert left.nnz > 0


@pytest.mark.slow
def test_ray_features_equal_the_local_run_and_resume(
    ray_runtime: Any, reader: Reader, saes: dict[Site, Any], tmp_path: Path
) -> None:
    """Ray reads the chunks the local loop would read from the same cache, so the features are
    the same bits (a chunk's padding changes the last bits: the reference must start from the
    same cache state, here a copy of the Ray run's after its interruption)."""
    from calibration.ray_extract import RayRunner

    data = varied(n_sources=10)  # 40 rows: 1 cached ahead, then 5 chunks of 8 (the last 7)
    kwargs: dict[str, Any] = {"reader": reader, "saes": saes, "chunk_size": CHUNK}
    cache = tmp_path / "cache"
    first = data.subset([0])
    assert extract_features(first, cache_dir=cache, progress=False, **kwargs).n_computed == 1

    runner = RayRunner(RayOptions(actors=2))
    interrupted = Recording(runner, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        extract_features(data, cache_dir=cache, progress=False, runner=interrupted, **kwargs)
    cached_key = text_key(prompt_of(first.examples[0]), first.examples[0].response)
    assert cached_key not in interrupted.sent  # the cached row never went to Ray
    assert len(interrupted.sent) == len(data) - 1
    shutil.copytree(cache, tmp_path / "copy")

    resumed = Recording(runner)
    got = extract_features(data, cache_dir=cache, progress=False, runner=resumed, **kwargs)
    # The two chunks that came back before the interruption were written as they arrived.
    assert got.n_computed == len(resumed.sent) == len(data) - 1 - 2 * CHUNK
    local = extract_features(data, cache_dir=tmp_path / "copy", progress=False, **kwargs)
    assert local.n_computed == got.n_computed
    assert_same(got, local)

    again = Recording(runner)
    assert extract_features(data, cache_dir=cache, progress=False, runner=again, **kwargs)
    assert again.sent == []  # all cached: nothing goes to Ray (no pool is started)


def test_an_actor_with_other_weights_is_refused(reader: Reader, saes: dict[Site, Any]) -> None:
    job = ReaderJob(reader, saes, [SITE], Pooling.MEAN_MAX, 4)
    spec = ReaderSpec.of(job, device="cpu")
    assert load_job(spec).reader.fingerprint == reader.fingerprint  # the spec loads the same
    forged = dataclasses.replace(spec, identity={**spec.identity, f"sae {SITE}": "0" * 32})
    with pytest.raises(ArtifactError, match=f"sae {SITE}"):
        load_job(forged)


def test_an_actor_loads_the_surprisal_reader_its_spec_names() -> None:
    surprising = Reader.miniature([SITE], surprisal=True)
    job = ReaderJob(surprising, {}, [], Pooling.MEAN, 4, surprisal=True)
    spec = ReaderSpec.of(job, device="cpu")
    assert spec.surprisal
    assert spec.identity["surprisal"] == "True"
    loaded = load_job(spec)
    assert loaded.reader.surprisal
    assert loaded.surprisal
    assert loaded.reader.surprisal_fingerprint == surprising.surprisal_fingerprint
    plain = dataclasses.replace(spec, surprisal=False)  # the actor would read no surprisal
    with pytest.raises(ArtifactError, match="surprisal"):
        load_job(plain)


def test_a_reader_without_a_source_cannot_be_named_to_actors(reader: Reader) -> None:
    bare = Reader(reader.decoder, reader.tokenizer, reader.sites)
    with pytest.raises(ConfigError, match="Ray actors cannot load it"):
        ReaderSpec.of(ReaderJob(bare, {}, [SITE], Pooling.MEAN, 4), device="cpu")


def test_ray_missing_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"scope-guard\[ray\]"):
        require_ray()
    data = write_jsonl(synthetic_rag(n_sources=5).examples, tmp_path / "rows.jsonl")
    argv = ["calibrate", str(data), "--risk", "fabrication", "--reader", "miniature"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--ray", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "ConfigError: --ray needs Ray" in err
    assert "loaded" not in err  # refused before any work


def test_bad_ray_flags_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_jsonl(synthetic_rag(n_sources=5).examples, tmp_path / "rows.jsonl")
    score = ["score", str(data), "--out", str(tmp_path / "s.jsonl"), "--ray"]
    assert main([*score, "--ray-actors", "0"]) == 2
    assert "bad --ray options: actors" in capsys.readouterr().err
    assert main(score) == 2
    assert "--ray needs --bundle" in capsys.readouterr().err
    calibrate = ["calibrate", str(data), "--risk", "fabrication", "--grounding-only"]
    assert main([*calibrate, "--out", str(tmp_path / "b"), "--ray"]) == 2
    assert "--grounding-only reads with none" in capsys.readouterr().err


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_calibrate_and_score_on_ray_equal_the_local_commands(
    ray_runtime: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = varied(n_sources=8)
    data = write_jsonl(rows.examples, tmp_path / "rows.jsonl")
    common = ["--risk", "fabrication", "--reader", "miniature", "--bootstrap", "10"]
    common += ["--C", "1", "--no-nested-c", "--folds", "2", "--no-progress", "--json"]
    on_ray = ["--ray", "--ray-actors", "2"]
    for name, extra in {"local": [], "ray": on_ray}.items():
        out, cache = tmp_path / f"bundle_{name}", tmp_path / f"cache_{name}"
        argv = ["calibrate", str(data), *common, "--out", str(out), "--cache-dir", str(cache)]
        assert main([*argv, *extra]) == 0
    err = capsys.readouterr().err
    assert f"ray: {len(rows)} of {len(rows)} rows read by a pool of 2 actor(s)" in err
    # Same features, so the same fitted probe, byte for byte.
    local_tensors = (tmp_path / "bundle_local" / "tensors.safetensors").read_bytes()
    assert (tmp_path / "bundle_ray" / "tensors.safetensors").read_bytes() == local_tensors

    scores = {}
    for name, extra in {"local": [], "ray": on_ray}.items():
        out = tmp_path / f"scores_{name}.jsonl"
        argv = ["score", str(data), "--bundle", str(tmp_path / "bundle_local"), "--out", str(out)]
        assert main([*argv, "--batch-size", "3", "--no-progress", *extra]) == 0
        scores[name] = _lines(out)
    assert "the reader's passes run on 2 actor(s)" in capsys.readouterr().err
    assert len(scores["ray"]) == len(rows)
    assert scores["ray"] == scores["local"]  # every score, float for float


def test_an_actor_error_is_reported_by_its_own_type_and_message() -> None:
    """Ray wraps an actor's error (as a cause, or only as traceback text); the report names
    ours, not Ray's wrapper."""
    from calibration.ray_options import ray_error_cause

    wrapped = RuntimeError("ray task failed")
    wrapped.__cause__ = ArtifactError("other weights on this node")
    assert ray_error_cause(wrapped) == "ArtifactError: other weights on this node"
    text = RuntimeError(
        "The actor died because of an error raised in its creation task\n"
        "Traceback ...\nscope_guard.errors.ArtifactError: the Ray actor loaded another reader\n"
    )
    assert ray_error_cause(text) == "ArtifactError: the Ray actor loaded another reader"
    assert ray_error_cause(RuntimeError("first\nlast line")) == "last line"


class _NoReading:
    """A runner that fails if any row is missing from the cache."""

    def __call__(self, job: ReaderJob, chunks: Sequence[Sequence[ChunkItem]]) -> Iterator[Any]:
        if any(chunks):
            raise AssertionError("the Ray prefill left rows for the local reader")
        return iter(())


@pytest.mark.slow
def test_calibrate_and_score_on_ray_with_token_lookback_and_surprisal_blocks(
    ray_runtime: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import calibration.pipeline as pipeline

    real_calibrate = pipeline.calibrate
    checked = []

    def calibrate_after_checking_the_cache(dataset: Any, settings: Any, **kw: Any) -> Any:
        features = extract_features(
            dataset,
            reader=kw["reader"],
            raw_sites=[],
            cache_dir=kw["cache_dir"],
            progress=False,
            runner=_NoReading(),
            token_sites=kw["token_sites"],
            lookback=kw["lookback"],
            surprisal=kw["surprisal"],
        )
        checked.append(features.n_computed)
        return real_calibrate(dataset, settings, **kw)

    monkeypatch.setattr(pipeline, "calibrate", calibrate_after_checking_the_cache)
    data = write_jsonl(varied(n_sources=8).examples, tmp_path / "rows.jsonl")
    argv = ["calibrate", str(data), "--risk", "fabrication", "--reader", "miniature"]
    argv += ["--token-site", "resid_post@2", "--lookback", "--surprisal", "--C", "1"]
    argv += ["--no-nested-c", "--folds", "2", "--bootstrap", "10", "--no-progress"]
    argv += ["--examples", "0"]
    on_ray = ["--out", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c"), "--ray"]
    assert main([*argv, *on_ray]) == 0
    assert checked == [0]
    monkeypatch.setattr(pipeline, "calibrate", real_calibrate)
    assert main([*argv, "--out", str(tmp_path / "local"), "--cache-dir", str(tmp_path / "l")]) == 0
    # The same features, so the same probes (surprisal block included), byte for byte.
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "surprisal" in [b["kind"] for b in manifest["detectors"][0]["blocks"]]
    local = (tmp_path / "local" / "tensors.safetensors").read_bytes()
    assert (tmp_path / "b" / "tensors.safetensors").read_bytes() == local
    # score --ray: the actors read surprisal too (a plain actor reader is refused at start)
    rows = data.read_text(encoding="utf-8").count("\n")
    scores = {}
    for name, extra in {"local": [], "ray": ["--ray", "--ray-actors", "1"]}.items():
        out = tmp_path / f"scores_{name}.jsonl"
        argv = ["score", str(data), "--bundle", str(tmp_path / "b"), "--out", str(out)]
        assert main([*argv, "--no-progress", *extra]) == 0
        scores[name] = _lines(out)
    assert len(scores["ray"]) == rows
    assert scores["ray"] == scores["local"]
