"""Risk-log write throughput: PostgreSQL against SQLite, with 1 and 8 writer processes.

Each writer process opens the log, waits at a barrier with the others, then writes ``--records``
records (``write`` returns only once the record is durable: a committed, WAL-flushed INSERT on
PostgreSQL; a ``synchronous=FULL`` WAL commit on SQLite). Throughput is all records over the
wall time from the first writer's start to the last writer's end.

Without ``--url`` a throwaway PostgreSQL server is started from Debian's binaries with default
durability settings (``fsync=on``, ``synchronous_commit=on``), on loopback, like the tests'.

    .venv/bin/python benchmarks/risklog_postgres.py --records 400 --writers 1 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "risklog"))


def _writer(target: str, tag: str, worker: int, n: int, start: Any, results: Any) -> None:
    from risklog_builders import worker_record

    from scope_guard.risklog import open_risk_log

    sink = open_risk_log(target)
    records = [
        worker_record(worker, i).model_copy(update={"request_id": f"{tag}-{worker}-{i}"})
        for i in range(n)
    ]  # ~0.6 kB of JSON each; ids unique per run, so a reused database stores every one
    try:
        start.wait(timeout=600)  # spawn imports are slow on a loaded machine
        t0 = time.time()
        for record in records:
            sink.write(record)
        results.put((t0, time.time()))
    finally:
        sink.close()


def run(target: str, writers: int, n: int) -> float:
    """Records per second of ``writers`` processes writing ``n`` records each to ``target``."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(writers), context.Queue()
    tag = f"bench-{time.time_ns()}"
    processes = [
        context.Process(target=_writer, args=(target, tag, w, n, start, results))
        for w in range(writers)
    ]
    for process in processes:
        process.start()
    spans = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        if process.exitcode != 0:
            msg = f"a writer failed (exit {process.exitcode})"
            raise RuntimeError(msg)
    wall = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return writers * n / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=400, help="records per writer")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--url", help="an existing empty database (default: a throwaway server)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="scope-guard-bench-"))
    server = None
    try:
        url = args.url
        if url is None:
            from pg_server import find_pg_bin, start_server

            bin_dir = find_pg_bin()
            if bin_dir is None:
                sys.exit("no PostgreSQL binaries (initdb, pg_ctl) found")
            # A folder of its own, which start_server gives to the server's user (under root,
            # whose parent must let that user through: search, no listing).
            root.chmod(0o711)
            server = start_server(Path(tempfile.mkdtemp(dir=root, prefix="pg-")), bin_dir)
        rows = []
        for writers in args.writers:
            if url is None:
                assert server is not None
                db_url = server.create_database()
            else:
                db_url = url
            sqlite = str(root / f"risk-{writers}.db")
            for backend, target in (("postgresql", db_url), ("sqlite", sqlite)):
                rate = run(target, writers, args.records)
                rows.append({"backend": backend, "writers": writers, "records_per_s": rate})
                print(f"{backend:<10} {writers} writer(s): {rate:8.0f} records/s", flush=True)
        print(json.dumps({"records_per_writer": args.records, "results": rows}))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
