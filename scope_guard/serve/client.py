"""``RemoteGuard``: a guard-like client of the guard service, so many application servers share
one reader. It has what the LangChain handler and runnable call on a guard (``assess``,
``aassess``, ``assess_batch``, ``stats``, ``failure_mode``), so they take it in place of a
local :class:`~scope_guard.ScopeGuard`.

Failures follow the same setting as a local guard's: when the service cannot be reached, does
not answer in time, answers 5xx (or 413, its own size limit), or answers something that is not
a report for this exchange, the client makes the failure report itself: ``failure_mode="open"``
allows the answer, ``"closed"`` serves the fallback; both log the failure and count it in
``stats.failures``. The service never saw such an exchange, or it was assessed and logged
there, so a failure is never logged twice. A refusal of the request itself (400/415/422: bad
input, as a local guard's ``InputError``) raises :class:`~scope_guard.errors.InputError`.

Retries are bounded and only where the exchange surely was not assessed: a connection that
could not be made (refused, connect timeout, no free connection) and 503 (queue full); never
after a read timeout or a 5xx, which may follow an assessment already logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import ValidationError

from scope_guard._version import __version__
from scope_guard.errors import ConfigError, InputError, ScopeGuardError
from scope_guard.guard import GuardStats, OutcomeRule
from scope_guard.guard_parts import failure_report, to_exchange
from scope_guard.serve._extras import require
from scope_guard.serve.protocol import BatchReply, outcome_table
from scope_guard.types import Exchange, RiskReport

__all__ = ["RemoteGuard", "RemoteGuardError"]

logger = logging.getLogger(__name__)

_REFUSED = frozenset({400, 415, 422})


class RemoteGuardError(ScopeGuardError):
    """The guard service could not give a report (unreachable, timeout, 5xx, malformed)."""


class RemoteGuard:
    """A client of ``scope-guard serve`` that stands in for a local guard.

    Args:
        url: The service's base URL (``http://guard.internal:8000``).
        failure_mode: ``"open"`` (the answer passes) or ``"closed"`` (the fallback is served)
            when the service fails (see the module docstring).
        timeout_s: Longest wait for a reply (read, write), per try.
        connect_timeout_s: Longest wait to connect, per try.
        retries: Extra tries after a connection failure or a 503 (0: none).
        backoff_s: Pause before the first retry, doubled after each.
        headers: Extra HTTP headers (an auth token of a proxy in front of the service).
        transport: An httpx transport for the sync client (tests: ``httpx.ASGITransport``
            needs the async one: ``async_transport``).
        async_transport: An httpx transport for the async client.
        max_connections: Connection pool size of each client.
        max_reply_bytes: Longest reply read; a longer one is a malformed reply (a service, or
            whatever answers at its address, cannot make the client buffer without bound).
        raise_errors: Raise :class:`RemoteGuardError` instead of degrading (debugging).

    Raises:
        ConfigError: an invalid setting.
        MissingExtraError: httpx is not installed (the ``serve`` extra).
    """

    def __init__(
        self,
        url: str,
        *,
        failure_mode: Literal["open", "closed"] = "open",
        timeout_s: float = 30.0,
        connect_timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
        async_transport: Any = None,
        max_connections: int = 100,
        max_reply_bytes: int = 64 * 2**20,
        raise_errors: bool = False,
    ) -> None:
        if failure_mode not in ("open", "closed"):
            msg = f"failure_mode must be 'open' or 'closed', got {failure_mode!r}"
            raise ConfigError(msg)
        if not 0 <= retries <= 10:
            msg = f"retries must be between 0 and 10, got {retries!r}"
            raise ConfigError(msg)
        if max_reply_bytes < 1024:
            msg = f"max_reply_bytes must be at least 1024, got {max_reply_bytes!r}"
            raise ConfigError(msg)
        self.max_reply_bytes = max_reply_bytes
        if timeout_s <= 0 or connect_timeout_s <= 0 or backoff_s < 0:
            msg = "timeout_s and connect_timeout_s must be > 0, backoff_s >= 0"
            raise ConfigError(msg)
        self._httpx: Any = require("httpx", "serve")
        self.url = url.rstrip("/")
        self.failure_mode = failure_mode
        self.retries = retries
        self.backoff_s = backoff_s
        self.raise_errors = raise_errors
        self.stats = GuardStats()
        self.versions = {"scope_guard": __version__, "remote": self.url}
        self._options: dict[str, Any] = {
            "base_url": self.url,
            "timeout": self._httpx.Timeout(timeout_s, connect=connect_timeout_s),
            "headers": {"content-type": "application/json", **dict(headers or {})},
            "limits": self._httpx.Limits(max_connections=max_connections),
        }
        self._client = self._httpx.Client(transport=transport, **self._options)
        self._async_transport = async_transport
        # an AsyncClient's pool belongs to one event loop: one client per loop
        self._aclients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the guard interface
    def assess(
        self, exchange: Exchange | Mapping[str, Any], *, outcome: OutcomeRule | None = None
    ) -> RiskReport:
        """Assess one exchange on the service (see :meth:`ScopeGuard.assess`).

        Raises:
            InputError: the exchange is invalid, or the service refused it as input.
        """
        item = to_exchange(exchange)
        body = _body({"exchange": _exchange_data(item), "outcomes": _table(outcome, item)})
        try:
            report = self._single(self._post("/assess", body), item)
        except RemoteGuardError as exc:
            report = self._failed(item, exc)
        return self._finish(item, report, outcome)

    async def aassess(
        self, exchange: Exchange | Mapping[str, Any], *, outcome: OutcomeRule | None = None
    ) -> RiskReport:
        """:meth:`assess` without blocking the event loop (an async HTTP client)."""
        item = to_exchange(exchange)
        body = _body({"exchange": _exchange_data(item), "outcomes": _table(outcome, item)})
        try:
            report = self._single(await self._apost("/assess", body), item)
        except RemoteGuardError as exc:
            report = self._failed(item, exc)
        return self._finish(item, report, outcome)

    def assess_batch(
        self,
        exchanges: Sequence[Exchange | Mapping[str, Any]],
        *,
        outcome: OutcomeRule | None = None,
    ) -> list[RiskReport]:
        """Assess many exchanges in one request (``/assess_batch``), reports in order."""
        items = [to_exchange(e) for e in exchanges]
        if not items:
            return []
        tables = [_table(outcome, item) for item in items] if outcome is not None else None
        body = _body({"exchanges": [_exchange_data(i) for i in items], "outcomes": tables})
        try:
            reports = self._many(self._post("/assess_batch", body), items)
        except RemoteGuardError as exc:
            reports = [self._failed(item, exc) for item in items]
        return [self._finish(i, r, outcome) for i, r in zip(items, reports, strict=True)]

    def healthz(self) -> dict[str, Any]:
        """The service's ``/healthz`` reply.

        Raises:
            RemoteGuardError: the service is unreachable or not healthy.
        """
        try:
            response = self._client.get("/healthz")
            data = response.json()
        except (self._httpx.HTTPError, ValueError) as exc:
            msg = f"{self.url}/healthz: {type(exc).__name__}: {exc}"
            raise RemoteGuardError(msg) from exc
        if response.status_code != 200 or not isinstance(data, dict):
            msg = f"{self.url}/healthz answered {response.status_code}"
            raise RemoteGuardError(msg)
        return data

    # ------------------------------------------------------------------ LangChain sugar
    def callback(self, mode: Literal["monitor", "gate"] = "monitor", **kwargs: Any) -> Any:
        """A LangChain callback handler assessing on the service (see ScopeGuard.callback)."""
        from scope_guard.integrations.langchain import ScopeGuardCallbackHandler

        return ScopeGuardCallbackHandler(self, mode=mode, **kwargs)

    def wrap(self, chain: Any, **kwargs: Any) -> Any:
        """``chain`` under the remote guard (see ScopeGuard.wrap)."""
        from scope_guard.integrations.langchain import guard_runnable

        return guard_runnable(chain, self, **kwargs)

    # ------------------------------------------------------------------ transport
    def _retryable(self, exc: BaseException) -> bool:
        h = self._httpx
        return isinstance(exc, h.ConnectError | h.ConnectTimeout | h.PoolTimeout)

    def _post(self, path: str, body: bytes) -> Any:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = self._client.build_request("POST", path, content=body)
                streamed = self._client.send(request, stream=True)
                try:
                    chunks = _capped(streamed.iter_bytes(), self.max_reply_bytes)
                    response = _Reply(streamed.status_code, b"".join(chunks))
                finally:
                    streamed.close()
            except _TooLong as exc:
                msg = f"{self.url}{path}: the reply is longer than {exc.args[0]} bytes"
                raise RemoteGuardError(msg) from exc
            except self._httpx.HTTPError as exc:
                if last or not self._retryable(exc):
                    raise _transport_error(self.url + path, exc) from exc
            else:
                if response.status_code != 503 or last:
                    return response
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _apost(self, path: str, body: bytes) -> Any:
        client = self._aclient()
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = client.build_request("POST", path, content=body)
                streamed = await client.send(request, stream=True)
                try:
                    size, parts = 0, []
                    async for chunk in streamed.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_reply_bytes:
                            raise _TooLong(self.max_reply_bytes)
                        parts.append(chunk)
                    response = _Reply(streamed.status_code, b"".join(parts))
                finally:
                    await streamed.aclose()
            except _TooLong as exc:
                msg = f"{self.url}{path}: the reply is longer than {exc.args[0]} bytes"
                raise RemoteGuardError(msg) from exc
            except self._httpx.HTTPError as exc:
                if last or not self._retryable(exc):
                    raise _transport_error(self.url + path, exc) from exc
            else:
                if response.status_code != 503 or last:
                    return response
            await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _aclient(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._aclients.get(loop)
            if client is None:
                client = self._httpx.AsyncClient(transport=self._async_transport, **self._options)
                self._aclients[loop] = client
            return client

    # ------------------------------------------------------------------ replies
    def _reply(self, response: Any) -> Any:
        """The JSON of a 200 reply; raises InputError on a refusal, RemoteGuardError else."""
        status = response.status_code
        detail = _detail(response)
        if status in _REFUSED:
            msg = f"the guard service refused the request ({status}): {detail}"
            raise InputError(msg)
        if status != 200:
            msg = f"the guard service answered {status}: {detail}"
            raise RemoteGuardError(msg)
        try:
            return response.json()
        except ValueError as exc:
            msg = "the guard service's reply is not JSON"
            raise RemoteGuardError(msg) from exc

    def _single(self, response: Any, exchange: Exchange) -> RiskReport:
        data = self._reply(response)
        try:
            report = RiskReport.model_validate(data)
        except ValidationError as exc:
            msg = "the guard service's reply is not a risk report"
            raise RemoteGuardError(msg) from exc
        _check_report(report, exchange)
        return report

    def _many(self, response: Any, exchanges: list[Exchange]) -> list[RiskReport]:
        data = self._reply(response)
        try:
            reports = BatchReply.model_validate(data).reports
        except ValidationError as exc:
            msg = "the guard service's reply is not a list of risk reports"
            raise RemoteGuardError(msg) from exc
        if len(reports) != len(exchanges):
            msg = f"the guard service sent {len(reports)} reports for {len(exchanges)} exchanges"
            raise RemoteGuardError(msg)
        for report, exchange in zip(reports, exchanges, strict=True):
            _check_report(report, exchange)
        return reports

    def _failed(self, exchange: Exchange, exc: RemoteGuardError) -> RiskReport:
        if self.raise_errors:
            raise exc
        logger.error(
            "scope-guard: the remote guard failed on request %s (failing %s): %s",
            exchange.request_id,
            self.failure_mode,
            exc,
        )
        return failure_report(exchange, exc, self.failure_mode, self.versions)

    def _finish(
        self, exchange: Exchange, report: RiskReport, outcome: OutcomeRule | None
    ) -> RiskReport:
        if outcome is not None:
            served = outcome(report)
            if report.error is None and report.outcome is not served:
                logger.warning(
                    "scope-guard: request %s: the outcome rule gives %s, the service logged %s "
                    "(a rule must depend only on the action and the attempt)",
                    exchange.request_id,
                    served,
                    report.outcome,
                )
            report = report.model_copy(update={"outcome": served})
        self.stats.count(report)
        return report

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Close the sync client; async clients are closed by :meth:`aclose` in their loop."""
        self._client.close()

    async def aclose(self) -> None:
        """Close this event loop's async client (and the sync one)."""
        with self._lock:
            client = self._aclients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    def __enter__(self) -> RemoteGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteGuard({self.url!r}, failure_mode={self.failure_mode!r})"


def _exchange_data(exchange: Exchange) -> dict[str, Any]:
    return exchange.model_dump(mode="json")


def _table(outcome: OutcomeRule | None, exchange: Exchange) -> dict[str, str] | None:
    if outcome is None:
        return None
    return {a.value: o.value for a, o in outcome_table(outcome, exchange).items()}


class _TooLong(Exception):
    """A reply past ``max_reply_bytes`` (turned into a RemoteGuardError by the caller)."""


class _Reply:
    """A reply read whole (at most ``max_reply_bytes``): its status and its bytes."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


def _capped(chunks: Any, limit: int) -> list[bytes]:
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _TooLong(limit)
        out.append(chunk)
    return out


def _body(payload: dict[str, Any]) -> bytes:
    # ASCII escapes carry lone surrogates (which UTF-8 cannot) to the service intact
    try:
        return json.dumps(payload, ensure_ascii=True, allow_nan=False).encode("ascii")
    except (TypeError, ValueError) as exc:
        msg = f"the exchange cannot be sent as JSON: {exc}"
        raise InputError(msg) from exc


def _detail(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return "(no JSON detail)"
    if isinstance(data, dict):
        return str(data.get("detail", ""))[:500]
    return "(no detail)"


def _check_report(report: RiskReport, exchange: Exchange) -> None:
    if report.request_id != exchange.request_id or report.attempt != exchange.attempt:
        msg = "the guard service's report is for another request"
        raise RemoteGuardError(msg)


def _transport_error(url: str, exc: BaseException) -> RemoteGuardError:
    return RemoteGuardError(f"{url}: {type(exc).__name__}: {exc}")
