"""The service's settings: how big a body it reads, how it batches, how long a request waits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServeSettings"]


class ServeSettings(BaseModel):
    """How the guard service reads, queues and batches requests.

    Attributes:
        max_body_bytes: Largest request body read; a longer one is refused (413) as soon as
            its ``Content-Length`` or its bytes so far exceed it. 8 MiB holds the guard's own
            input limits for most texts (2 M context characters at 1-4 bytes each).
        max_batch: Most exchanges assessed in one call of the guard (one batched reader pass).
            1 turns micro-batching off.
        max_wait_ms: How long the first queued exchange waits for others to join its batch.
        max_queue: Most exchanges waiting; beyond it a request is refused (503, not assessed,
            safe to retry).
        max_batch_request: Most exchanges in one ``/assess_batch`` request.
        body_timeout_s: Longest a request body may take to arrive; then 408 (a client
            trickling bytes cannot hold a connection open for ever).
        request_timeout_s: Longest a request waits for its report; then 504 (its exchange is
            still assessed and logged once, so a client must not resend it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_batch: int = Field(default=16, ge=1, le=1024)
    max_wait_ms: float = Field(default=5.0, ge=0.0, le=10_000.0)
    max_queue: int = Field(default=1024, ge=1)
    max_batch_request: int = Field(default=256, ge=1)
    body_timeout_s: float = Field(default=30.0, gt=0.0)
    request_timeout_s: float = Field(default=60.0, gt=0.0)
