"""Runs the benchmark pipelines, each in a fresh process, and compares them.

Every pipeline gets its own interpreter so that its peak RSS is its own and one pipeline's
allocations do not warm or fragment another's heap.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scope_guard.bench.shapes import get_shape
from scope_guard.bench.worker import PIPELINES
from scope_guard.errors import ConfigError

__all__ = ["BenchConfig", "BenchReport", "run_benchmark"]

# Targets of the foundation issue, at the gemma-2-2b shape, bf16, 1024 tokens, 2 threads.
TARGET_NARROW_VS_FLOOR = 0.9
TARGET_NARROW_VS_NAIVE = 1.7
TARGET_PEAK_RSS_BYTES = 6 * 1024**3


@dataclass(frozen=True)
class BenchConfig:
    """Benchmark settings.

    Attributes:
        shape: ``tiny``, ``small`` or ``gemma-2-2b`` (random weights), when ``model`` is None.
        model: A real reader to measure instead (``gemma-3-270m``, a folder, a GGUF).
        layer: The hooked layer of ``model`` (``resid_post``).
        d_sae: Width of the random SAE encoded with ``model``.
        tokens: Sequence length of the exchange read (a quarter of it is the response).
        dtype: Reader dtype (``bfloat16``, ``float32``...).
        threads: torch intra-op threads.
        repeats: Timed repetitions per pipeline, after one warm-up.
        n_narrow: Latents kept by the narrowed SAE.
        pipelines: Which pipelines to run.
    """

    shape: str = "tiny"
    model: str | None = None
    layer: int = 9
    d_sae: int = 16384
    tokens: int = 1024
    dtype: str = "bfloat16"
    threads: int = 2
    repeats: int = 3
    n_narrow: int = 256
    pipelines: tuple[str, ...] = PIPELINES

    def __post_init__(self) -> None:
        get_shape(self.shape)
        for name in ("tokens", "threads", "repeats", "n_narrow"):
            if int(getattr(self, name)) < 1:
                msg = f"{name} must be >= 1, got {getattr(self, name)}"
                raise ConfigError(msg)
        unknown = set(self.pipelines) - set(PIPELINES)
        if unknown:
            msg = f"unknown pipelines {sorted(unknown)}; valid: {', '.join(PIPELINES)}"
            raise ConfigError(msg)


@dataclass
class BenchReport:
    """Per-pipeline results plus the ratios the targets are stated in."""

    config: dict[str, Any]
    machine: dict[str, Any]
    results: dict[str, dict[str, Any]]
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def _machine() -> dict[str, Any]:
    import torch

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def _run_one(config: BenchConfig, pipeline: str) -> dict[str, Any]:
    spec = {**config.__dict__, "pipeline": pipeline}
    spec.pop("pipelines")
    env = {**os.environ, "OMP_NUM_THREADS": str(config.threads)}
    proc = subprocess.run(
        [sys.executable, "-m", "scope_guard.bench.worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        msg = f"benchmark pipeline {pipeline!r} failed:\n{proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run_benchmark(config: BenchConfig, progress: Any = None) -> BenchReport:
    """Run each pipeline in turn; ``progress(pipeline)`` is called before each one."""
    results = {}
    for pipeline in config.pipelines:
        if progress is not None:
            progress(pipeline)
        results[pipeline] = _run_one(config, pipeline)
    report = BenchReport(config=dict(config.__dict__), machine=_machine(), results=results)
    tps = {p: r["tokens_per_s"] for p, r in results.items()}
    for ours in ("scope_guard", "scope_guard_narrow"):
        for other in ("floor", "naive"):
            if ours in tps and other in tps:
                report.ratios[f"{ours}_vs_{other}"] = tps[ours] / tps[other]
    checks = {
        "scope_guard_narrow_vs_floor": (">=", TARGET_NARROW_VS_FLOOR),
        "scope_guard_narrow_vs_naive": (">=", TARGET_NARROW_VS_NAIVE),
    }
    for key, (op, bound) in checks.items():
        if key in report.ratios:
            report.targets[key] = {
                "bound": f"{op} {bound}",
                "value": report.ratios[key],
                "met": report.ratios[key] >= bound,
            }
    if "scope_guard_narrow" in results:
        rss = results["scope_guard_narrow"]["peak_rss_bytes"]
        report.targets["scope_guard_narrow_peak_rss"] = {
            "bound": "< 6 GiB",
            "value": rss,
            "met": rss < TARGET_PEAK_RSS_BYTES,
        }
    return report
