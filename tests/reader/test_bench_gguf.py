"""``scope-guard bench --model``: the benchmark on a real (here: tiny GGUF) reader."""

from __future__ import annotations

import json

import pytest
from gguf_builders import write_tiny_gemma3_gguf

from scope_guard.cli.main import main

pytest.importorskip("gguf")


def test_bench_reads_a_gguf_model(tmp_path, capsys):
    path = write_tiny_gemma3_gguf(tmp_path / "tiny.gguf")
    argv = ["bench", "--model", str(path), "--layer", "2", "--d-sae", "512", "--tokens", "48"]
    assert main([*argv, "--repeats", "1", "--n-narrow", "32", "--dtype", "float32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["results"]) == {"floor", "scope_guard", "scope_guard_narrow", "naive"}
    for result in report["results"].values():
        assert result["shape"] == str(path)
        assert result["layer"] == 2
        assert result["n_tokens"] == pytest.approx(48, abs=4)
        assert result["tokens_per_s"] > 0
    assert report["results"]["scope_guard"]["n_latents"] == 512
    assert report["results"]["scope_guard_narrow"]["n_latents"] == 32
