"""The service's Prometheus metrics, in a registry of its own (one per app, so two apps in one
process, or a test's app, never share or clash)."""

from __future__ import annotations

from typing import Any

from scope_guard.serve._extras import require
from scope_guard.types import RiskReport

__all__ = ["ServeMetrics"]

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """Counters and histograms of one guard service.

    - ``scope_guard_requests_total{endpoint, status}``: HTTP requests answered;
    - ``scope_guard_exchanges_total``: exchanges assessed (each is one risk record);
    - ``scope_guard_actions_total{action}``: the policy's decisions;
    - ``scope_guard_failures_total{kind}``: ``guard`` (the guard failed and its failure mode
      decided), ``log`` (a risk record could not be written), ``rejected`` (queue full: not
      assessed), ``timeout`` (a request gave up waiting; its exchange is still assessed);
    - ``scope_guard_stage_seconds{stage}``: ``queue`` (per exchange), ``grounding``, ``read``,
      ``guard`` (the whole call: scoring and logging included; these three per micro-batch);
    - ``scope_guard_request_seconds{endpoint}``: HTTP request latency;
    - ``scope_guard_batch_size``: exchanges per micro-batch; ``scope_guard_queue_depth``.

    Raises:
        MissingExtraError: prometheus_client is not installed (the ``serve`` extra).
    """

    def __init__(self) -> None:
        prom: Any = require("prometheus_client", "serve")
        self._prom = prom
        self.registry = prom.CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = prom.Counter(
            "scope_guard_requests", "HTTP requests answered", ["endpoint", "status"], registry=reg
        )
        self.exchanges = prom.Counter(
            "scope_guard_exchanges", "Exchanges assessed (one risk record each)", registry=reg
        )
        self.actions = prom.Counter(
            "scope_guard_actions", "Decisions by action", ["action"], registry=reg
        )
        self.failures = prom.Counter(
            "scope_guard_failures", "Failures by kind", ["kind"], registry=reg
        )
        self.stages = prom.Histogram(
            "scope_guard_stage_seconds",
            "Latency per stage",
            ["stage"],
            buckets=_SECONDS,
            registry=reg,
        )
        self.request_seconds = prom.Histogram(
            "scope_guard_request_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=_SECONDS,
            registry=reg,
        )
        self.batch_size = prom.Histogram(
            "scope_guard_batch_size", "Exchanges per micro-batch", buckets=_SIZES, registry=reg
        )
        self.queue_depth = prom.Gauge(
            "scope_guard_queue_depth", "Exchanges waiting for the guard", registry=reg
        )

    def batch(self, reports: list[RiskReport], *, guard_s: float, log_failures: int) -> None:
        """Count one micro-batch's reports and its stages."""
        self.batch_size.observe(len(reports))
        self.stages.labels("guard").observe(guard_s)
        timed = next((r for r in reports if r.error is None and r.timings_ms), None)
        if timed is not None:  # batch-level stages: every report of the batch holds the same
            for stage in ("grounding", "read"):
                if stage in timed.timings_ms:
                    self.stages.labels(stage).observe(timed.timings_ms[stage] / 1000)
        for report in reports:
            self.exchanges.inc()
            self.actions.labels(report.decision.action.value).inc()
            if report.error is not None:
                self.failures.labels("guard").inc()
        if log_failures:
            self.failures.labels("log").inc(log_failures)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
