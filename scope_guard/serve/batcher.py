"""Micro-batching: concurrent requests' exchanges gathered into one call of the guard.

The reader costs less per exchange in a batched forward pass, so the service does not assess
each request on its own: requests put their exchanges on a bounded queue, and one worker task
takes the first waiting exchange, everything else already waiting, and what arrives within
``max_wait_ms``, up to ``max_batch``, and hands them to ``ScopeGuard.assess_batch`` in a
worker thread (the event loop never blocks on the reader). One batch is assessed at a time:
while it runs, the next one fills, so under load batches grow by themselves and an idle
service adds at most ``max_wait_ms`` to a request.

Each exchange is assessed, and so logged, exactly once: a request that stops waiting (a
timeout, a client gone) does not take its exchange back, and ``stop`` finishes what was
queued. Two exchanges with the same request id and attempt never share a batch (their
outcome tables are told apart by that key); the second waits for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, cast

from scope_guard.serve.protocol import OutcomeTable
from scope_guard.serve.settings import ServeSettings
from scope_guard.types import Exchange, Outcome, RiskReport

if TYPE_CHECKING:
    from scope_guard.guard import ScopeGuard
    from scope_guard.serve.metrics import ServeMetrics

__all__ = ["MicroBatcher", "QueueFull"]

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue holds ``max_queue`` exchanges: the request is refused, nothing assessed."""


class _Job(NamedTuple):
    exchange: Exchange
    table: OutcomeTable | None
    future: asyncio.Future[RiskReport]
    queued: float

    @property
    def key(self) -> tuple[str, int]:
        return (self.exchange.request_id, self.exchange.attempt)


class MicroBatcher:
    """Gathers exchanges into batches for one guard (see the module docstring).

    Args:
        guard: The guard (its ``assess_batch`` is called from a worker thread).
        settings: ``max_batch``, ``max_wait_ms`` and ``max_queue``.
        metrics: Where batch sizes, stages and actions are counted (optional).
    """

    def __init__(
        self,
        guard: ScopeGuard,
        settings: ServeSettings,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.guard = guard
        self.settings = settings
        self.metrics = metrics
        self._pending: deque[_Job] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def depth(self) -> int:
        """Exchanges waiting (not the batch being assessed)."""
        return len(self._pending)

    @property
    def healthy(self) -> bool:
        """False once the worker task died (every request would wait in vain)."""
        task = self._task
        return task is None or not task.done() or task.cancelled() or task.exception() is None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker in the running loop (called by the first request if not before)."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="scope-guard")

    async def stop(self) -> None:
        """Assess what is queued, then end the worker."""
        self._stopping = True
        if self._task is None:
            return
        assert self._wake is not None
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # ------------------------------------------------------------------ submitting
    def submit(
        self, exchanges: Sequence[Exchange], tables: Sequence[OutcomeTable | None]
    ) -> list[asyncio.Future[RiskReport]]:
        """Queue ``exchanges`` (all or none); their futures resolve to their reports.

        Raises:
            QueueFull: the queue cannot take them all (nothing was queued).
        """
        if self._stopping:
            msg = "the service is shutting down"
            raise QueueFull(msg)
        if len(self._pending) + len(exchanges) > self.settings.max_queue:
            waiting = len(self._pending)
            msg = f"{waiting} exchanges are waiting (max_queue {self.settings.max_queue})"
            raise QueueFull(msg)
        self.start()
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        futures = []
        for exchange, table in zip(exchanges, tables, strict=True):
            future: asyncio.Future[RiskReport] = loop.create_future()
            self._pending.append(_Job(exchange, table, future, now))
            futures.append(future)
        self._wake.set()
        return futures

    # ------------------------------------------------------------------ the worker
    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = await self._gather()
            await self._assess(batch)

    async def _gather(self) -> list[_Job]:
        """The next batch: what waits now, then what comes within ``max_wait_ms``."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_wait_ms / 1000
        batch: list[_Job] = []
        keys: set[tuple[str, int]] = set()
        deferred: list[_Job] = []
        while len(batch) < self.settings.max_batch:
            if self._pending:
                job = self._pending.popleft()
                if job.key in keys:
                    deferred.append(job)
                else:
                    keys.add(job.key)
                    batch.append(job)
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or self._stopping:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
        self._pending.extendleft(reversed(deferred))
        return batch

    async def _assess(self, batch: list[_Job]) -> None:
        started = time.perf_counter()
        if self.metrics is not None:
            for job in batch:
                self.metrics.stages.labels("queue").observe(started - job.queued)
        tables = {job.key: job.table for job in batch}

        def outcome(report: RiskReport) -> Outcome:
            table = tables.get((report.request_id, report.attempt))
            # None leaves the report's outcome unset, as for a local caller without a rule
            return cast(Outcome, table.get(report.decision.action) if table else None)

        log_failures = self.guard.stats.log_failures
        try:
            reports = await asyncio.to_thread(
                self.guard.assess_batch, [job.exchange for job in batch], outcome=outcome
            )
        except Exception as exc:  # refused input (checked before queueing) or raise_errors
            logger.exception("scope-guard service: a batch of %d failed", len(batch))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        if self.metrics is not None:
            self.metrics.batch(
                reports,
                guard_s=time.perf_counter() - started,
                log_failures=self.guard.stats.log_failures - log_failures,
            )
        for job, report in zip(batch, reports, strict=True):
            if not job.future.done():  # a request that gave up: its report is logged anyway
                job.future.set_result(report)
