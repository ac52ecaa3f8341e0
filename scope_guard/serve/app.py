"""The guard as an ASGI app (Starlette): ``/assess``, ``/assess_batch``, ``/healthz``, ``/metrics``.

One app serves one :class:`~scope_guard.ScopeGuard`; its exchanges go through a
:class:`~scope_guard.serve.batcher.MicroBatcher`, so concurrent requests share batched reader
passes. Any ASGI server hosts it (``scope-guard serve`` runs uvicorn; ``--ray`` wraps the same
app in a Ray Serve deployment).

Refusals are 4xx with ``{"error", "detail"}``: a body over ``max_body_bytes`` (413, also by
``Content-Length`` before reading), one that trickles past ``body_timeout_s`` (408), a body
that is not strict JSON (400), a JSON body of the wrong shape or types, or ``meta`` that is not
bounded JSON (422), a full queue or a service shutting down (503, nothing assessed: safe to
retry). A request that waits past ``request_timeout_s`` gets 504, and its exchange is still
assessed and logged once. The guard's own failures are not HTTP errors: they are reports whose
decision follows the guard's failure mode (``error`` set), as for a local guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from scope_guard.errors import InputError
from scope_guard.guard_inputs import check_meta
from scope_guard.serve._extras import require
from scope_guard.serve.batcher import MicroBatcher, QueueFull
from scope_guard.serve.body import Refusal, parse_json, read_body
from scope_guard.serve.metrics import ServeMetrics
from scope_guard.serve.protocol import (
    AssessBatchRequest,
    AssessRequest,
    OutcomeTable,
    check_batch,
    parse_exchange,
    refuse,
)
from scope_guard.serve.settings import ServeSettings
from scope_guard.types import Exchange, RiskReport

if TYPE_CHECKING:
    from scope_guard.guard import ScopeGuard

__all__ = ["create_app"]


def create_app(
    guard: ScopeGuard,
    settings: ServeSettings | None = None,
    *,
    close_guard: bool = True,
) -> Any:
    """The ASGI app serving ``guard``.

    Args:
        guard: The guard (its risk log receives one record per exchange served).
        settings: Body, batching and timeout limits (defaults: :class:`ServeSettings`).
        close_guard: Close the guard (its risk log) when the app shuts down (ASGI lifespan).

    Returns:
        A ``starlette.applications.Starlette`` app; ``app.state.batcher`` and
        ``app.state.metrics`` are its batcher and metrics.

    Raises:
        MissingExtraError: starlette or prometheus_client is not installed (``serve`` extra).
    """
    applications: Any = require("starlette.applications", "serve")
    responses: Any = require("starlette.responses", "serve")
    routing: Any = require("starlette.routing", "serve")
    settings = settings or ServeSettings()
    metrics = ServeMetrics()
    batcher = MicroBatcher(guard, settings, metrics)
    json_reply = responses.JSONResponse

    async def answered(
        endpoint: str, request: Any, handler: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        started = time.perf_counter()
        try:
            data = await handler(parse_json(await _body(request, settings)))
            response = json_reply(data)
        except Refusal as exc:
            response = json_reply(refuse(exc.kind, exc.detail), status_code=exc.status)
            if exc.status == 503:
                response.headers["Retry-After"] = "1"
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def reports(exchanges: list[Exchange], tables: list[OutcomeTable | None]) -> list[Any]:
        try:
            futures = batcher.submit(exchanges, tables)
        except QueueFull as exc:
            metrics.failures.labels("rejected").inc()
            raise Refusal(503, "overloaded", f"not assessed, retry later: {exc}") from None
        try:
            done = await asyncio.wait_for(
                asyncio.shield(asyncio.gather(*futures)), settings.request_timeout_s
            )
        except TimeoutError:
            metrics.failures.labels("timeout").inc()
            msg = (
                f"no report within {settings.request_timeout_s:g} s; the exchange is still "
                "assessed and logged: do not resend it"
            )
            raise Refusal(504, "timeout", msg) from None
        except Exception as exc:  # only a guard built with raise_errors=True gets here
            raise Refusal(500, "guard_error", type(exc).__name__) from None
        return [_report_data(r) for r in done]

    async def assess(body: Any) -> Any:
        request = _validated(AssessRequest, body)
        exchange = _exchange(request.exchange, guard, "exchange")
        return (await reports([exchange], [request.outcomes]))[0]

    async def assess_batch(body: Any) -> Any:
        request = _validated(AssessBatchRequest, body)
        if len(request.exchanges) > settings.max_batch_request:
            msg = (
                f"{len(request.exchanges)} exchanges in one request; at most "
                f"{settings.max_batch_request} (split the batch)"
            )
            raise Refusal(413, "batch_too_large", msg)
        try:
            check_batch(request)
        except InputError as exc:
            raise Refusal(422, "invalid_request", str(exc)) from None
        exchanges = [_exchange(e, guard, f"exchanges.{i}") for i, e in enumerate(request.exchanges)]
        tables = list(request.outcomes or [None] * len(exchanges))
        return {"reports": await reports(exchanges, tables)}

    async def assess_endpoint(request: Any) -> Any:
        return await answered("assess", request, assess)

    async def assess_batch_endpoint(request: Any) -> Any:
        return await answered("assess_batch", request, assess_batch)

    async def healthz(request: Any) -> Any:
        healthy = batcher.healthy
        reader = getattr(guard, "reader", None)
        data = {
            "status": "ok" if healthy else "failing",
            "queue": batcher.depth,
            "versions": dict(guard.versions),
            "stand_in": bool(reader is not None and reader.is_stand_in),
            "failure_mode": guard.failure_mode,
            "batching": {"max_batch": settings.max_batch, "max_wait_ms": settings.max_wait_ms},
        }
        return json_reply(data, status_code=200 if healthy else 503)

    async def metrics_endpoint(request: Any) -> Any:
        metrics.queue_depth.set(batcher.depth)
        payload, content_type = metrics.render()
        return responses.Response(payload, media_type=content_type)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            if close_guard:
                guard.close()

    app = applications.Starlette(
        routes=[
            routing.Route("/assess", assess_endpoint, methods=["POST"]),
            routing.Route("/assess_batch", assess_batch_endpoint, methods=["POST"]),
            routing.Route("/healthz", healthz, methods=["GET"]),
            routing.Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.guard = guard
    return app


async def _body(request: Any, settings: ServeSettings) -> bytes:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind.lower() not in ("application/json", ""):
        msg = f"Content-Type {kind[:60]!r} is not accepted: send application/json"
        raise Refusal(415, "unsupported_media_type", msg)
    return await read_body(request, settings.max_body_bytes, settings.body_timeout_s)


def _validated(model: Any, body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise Refusal(422, "invalid_request", refuse("", exc)["detail"]) from None


def _exchange(data: dict[str, Any], guard: ScopeGuard, where: str) -> Exchange:
    """An exchange checked as the guard would, so a bad one fails its request alone."""
    try:
        exchange = parse_exchange(data)
        check_meta(exchange.meta, guard.input_limits)
    except InputError as exc:
        raise Refusal(422, "invalid_exchange", f"{where}: {exc}") from None
    return exchange


def _report_data(report: RiskReport) -> dict[str, Any]:
    return report.model_dump(mode="json")
