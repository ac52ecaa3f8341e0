"""Many writers at once (threads, processes) and a writer killed with SIGKILL lose nothing:
the same tests for SQLite, JSONL and PostgreSQL (a real server, see conftest.py)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from risklog_builders import worker_record, write_many

from scope_guard.risklog import open_risk_log, read_risk_log

KINDS = ["db", "jsonl", "postgres"]


@pytest.fixture(params=KINDS)
def target(request, tmp_path) -> str:
    """Where the log goes: a file of that suffix, or an empty PostgreSQL schema."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / f"risk.{request.param}")


def _check_intact(target: str, workers: int, per_worker: int) -> None:
    reader = read_risk_log(target)
    try:
        records = reader.records()
        assert reader.count() == workers * per_worker
    finally:
        reader.close()
    assert len(records) == workers * per_worker
    by_id = {r.request_id: r for r in records}
    assert len(by_id) == workers * per_worker
    for worker in range(workers):
        for i in range(per_worker):
            assert by_id[f"w{worker}-{i}"] == worker_record(worker, i)


def test_threads_share_one_sink(target):
    sink = open_risk_log(target)
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def writer(worker: int) -> None:
        barrier.wait()
        try:
            for i in range(50):
                sink.write(worker_record(worker, i))
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()
    assert failures == []
    _check_intact(target, 8, 50)


def test_processes_append_to_one_log(target):
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(target=write_many, args=(target, worker, 50, start)) for worker in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    _check_intact(target, 4, 50)


@pytest.mark.parametrize("keep_writing", [False, True], ids=["idle", "mid-stream"])
def test_sigkill_after_write_returned_loses_nothing(target, keep_writing):
    """The child acknowledges each write after it returned; every acknowledged record is there."""
    n = 25
    script = Path(__file__).with_name("risklog_builders.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, str(script), target, str(n), "1" if keep_writing else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked = -1
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("ack "):
                acked = int(line.split()[1])
            if acked == n - 1:
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert acked == n - 1
    reader = read_risk_log(target)
    try:
        by_id = {r.request_id: r for r in reader.records()}
    finally:
        reader.close()
    for i in range(n):
        assert by_id[f"w0-{i}"] == worker_record(0, i)
    if not keep_writing:
        assert len(by_id) == n
