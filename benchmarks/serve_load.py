"""Load on the guard service over loopback: N concurrent clients x M requests each.

Starts ``scope-guard serve`` in its own process (uvicorn, a SQLite risk log), waits for
``/healthz``, and lets ``clients`` asyncio clients (one HTTP connection pool each) send
``requests`` ``POST /assess`` each, one after another. Then it stops the server (the queue is
finished, the log closed) and checks the log: exactly ``clients x requests`` records, every
request id once, none missing; and the service's own count of exchanges assessed agrees.
Reports requests/s, p50 / p99 / max latency, and the micro-batch sizes the server used.

Guards: ``weight-free`` (grounding + policy + log, no reader) and ``miniature`` (a bundle
whose probes read the built-in miniature reader: a random-weight Gemma-shaped model, so the
scores mean nothing but the batched forward passes are real). ``--compare-batching`` runs the
miniature guard with micro-batching off (``max_batch 1``) and on. Run from the project root:

    .venv/bin/python -m benchmarks.serve_load --clients 16 --requests 25 --compare-batching
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CONTEXTS = [
    "Acme Corp was founded in 1990 in Oslo by Kari Nordmann.",
    "Acme Corp employs 120 people and sells industrial valves.",
    "The Acme valve V2 has a maximum pressure of 40 bar.",
]
ANSWERS = [
    "Acme Corp was founded in 1990 in Oslo.",
    "Acme Corp was founded in 1874 in Berlin by Johann Schmidt, with 4500 employees.",
    "The V2 valve holds up to 40 bar.",
]
TABLE = {
    "allow": "answer",
    "warn": "answer",
    "regenerate": "retry",
    "fallback": "fallback",
    "block": "blocked",
}


def miniature_bundle(folder: Path) -> Path:
    """A bundle of two raw-activation probes on the miniature reader (random coefficients)."""
    import numpy as np

    from detectors.bundle import DetectorBundle
    from detectors.calibration_map import CalibrationMap
    from detectors.feature_blocks import BlockKind, FeatureBlock
    from detectors.probe import ProbeDetector
    from scope_guard.features import Pooling
    from scope_guard.reader import Reader
    from scope_guard.sites import Site

    site = Site.parse("resid_post@3")
    reader = Reader.miniature([site])
    rng = np.random.default_rng(0)
    block = FeatureBlock(kind=BlockKind.RAW, site=str(site), d=reader.d_model, pooling=Pooling.MEAN)
    detectors = [
        ProbeDetector(
            name=risk,
            risk=risk,
            blocks=[block],
            coef=rng.normal(size=reader.d_model) * 0.1,
            intercept=0.0,
            calibration=CalibrationMap(method="sigmoid"),
            threshold=0.5,
        )
        for risk in ("fabrication", "sycophancy")
    ]
    return DetectorBundle(detectors, reader=DetectorBundle.reader_spec(reader, detectors)).save(
        folder
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _exchange(client: int, i: int) -> dict[str, Any]:
    return {
        "request_id": f"c{client}-r{i}",
        "question": f"Tell me about Acme (client {client}, request {i}).",
        "contexts": CONTEXTS,
        "response": ANSWERS[(client + i) % len(ANSWERS)],
        "meta": {"client": client},
    }


async def _client(url: str, client: int, requests: int, latencies: list[float]) -> list[int]:
    import httpx

    statuses = []
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for i in range(requests):
            body = {"exchange": _exchange(client, i), "outcomes": TABLE}
            started = time.perf_counter()
            reply = await http.post("/assess", json=body)
            latencies.append(time.perf_counter() - started)
            statuses.append(reply.status_code)
    return statuses


async def _warm_up(url: str, n: int = 3) -> None:
    """First requests pay one-off costs (lazy imports, the reader's first pass): not timed,
    but logged and checked like the others."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        for i in range(n):
            body = {"exchange": {**_exchange(0, i), "request_id": f"warm-{i}"}}
            (await http.post("/assess", json=body)).raise_for_status()


async def _load(url: str, clients: int, requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    started = time.perf_counter()
    results = await asyncio.gather(*(_client(url, c, requests, latencies) for c in range(clients)))
    wall = time.perf_counter() - started
    statuses = Counter(s for r in results for s in r)
    ordered = sorted(latencies)
    return {
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "max_ms": 1000 * ordered[-1],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def _stage_means_ms(text: str) -> dict[str, float]:
    """Mean milliseconds per observation of each server stage (queue: per exchange; grounding,
    read, guard: per micro-batch)."""
    means = {}
    for stage in ("queue", "grounding", "read", "guard"):
        total = _metric(text, f'scope_guard_stage_seconds_sum{{stage="{stage}"}}')
        count = _metric(text, f'scope_guard_stage_seconds_count{{stage="{stage}"}}')
        if count > 0:
            means[stage] = 1000 * total / count
    return means


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"the server exited with {proc.returncode}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    msg = "the server did not become healthy"
    raise RuntimeError(msg)


def run_case(
    *,
    clients: int,
    requests: int,
    work: Path,
    bundle: Path | None = None,
    max_batch: int = 16,
    max_wait_ms: float = 5.0,
) -> dict[str, Any]:
    """One load run against a fresh ``scope-guard serve`` process; the figures and the checks.

    Raises:
        AssertionError: records were lost or duplicated, or a request was not answered 200.
    """
    import httpx

    from scope_guard.risklog import read_risk_log

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / f"serve_{port}.db"
    command = [sys.executable, "-m", "scope_guard.cli.main", "serve", "--port", str(port)]
    command += ["--risk-log", str(log), "--max-batch", str(max_batch)]
    command += ["--max-wait-ms", str(max_wait_ms)]
    if bundle is not None:
        command += ["--bundle", str(bundle)]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL, env={**os.environ})
    try:
        _wait_healthy(url, proc)
        asyncio.run(_warm_up(url))
        figures = asyncio.run(_load(url, clients, requests))
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn finishes the lifespan: queue done, log closed
        proc.wait(60)
    records = read_risk_log(log).records()
    ids = Counter(r.request_id for r in records)
    expected = {f"c{c}-r{i}" for c in range(clients) for i in range(requests)}
    expected |= {f"warm-{i}" for i in range(3)}
    total = clients * requests
    batches = _metric(metrics, "scope_guard_batch_size_count")  # warm-up batches included
    checks = {
        "records": len(records),
        "missing": len(expected - set(ids)),
        "duplicated": sum(1 for n in ids.values() if n > 1),
        "unexpected": len(set(ids) - expected),
        "server_exchanges": _metric(metrics, "scope_guard_exchanges_total"),
        "outcomes_logged": sum(1 for r in records if r.outcome is not None),
    }
    assert figures["statuses"] == {"200": total}, figures["statuses"]
    assert checks["records"] == len(expected), checks
    assert checks["missing"] == checks["duplicated"] == checks["unexpected"] == 0, checks
    assert checks["server_exchanges"] == len(expected), checks
    assert checks["outcomes_logged"] == total, checks  # the warm-up sends no outcome table
    return {
        "guard": "miniature" if bundle is not None else "weight-free",
        "clients": clients,
        "requests_per_client": requests,
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        **figures,
        "mean_batch": len(expected) / batches if batches else None,
        "batches": batches,
        "server_stage_mean_ms": _stage_means_ms(metrics),
        "checks": checks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=25, help="per client")
    parser.add_argument("--guard", choices=["weight-free", "miniature"], default="miniature")
    parser.add_argument("--compare-batching", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_load.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = miniature_bundle(work / "bundle") if args.guard == "miniature" else None
        plans = [(16, 5.0)]
        if args.compare_batching:
            plans = [(1, 0.0), (16, 5.0)]
        cases = []
        for max_batch, wait in plans:
            case = run_case(
                clients=args.clients,
                requests=args.requests,
                work=work,
                bundle=bundle,
                max_batch=max_batch,
                max_wait_ms=wait,
            )
            cases.append(case)
            print(
                f"{case['guard']} max_batch={max_batch}: {case['requests_per_s']:.1f} req/s, "
                f"p50 {case['p50_ms']:.0f} ms, p99 {case['p99_ms']:.0f} ms, "
                f"mean batch {case['mean_batch']:.1f}; records {case['checks']['records']}, "
                "none lost or duplicated"
            )
    result = {
        "benchmark": "serve_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
