"""Reading a hostile request body: bounded size and time, strict JSON, a clear refusal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["Refusal", "parse_json", "read_body"]


class Refusal(Exception):
    """A request the service refuses: its HTTP status, a kind, and a message for people.

    Args:
        status: The 4xx/5xx status.
        kind: Machine-readable kind (``body_too_large``, ``invalid_json``, ...).
        detail: What was wrong and what is accepted (never the offending text itself).
    """

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


async def read_body(request: Any, limit: int, timeout_s: float) -> bytes:
    """The body of a Starlette request, refused past ``limit`` bytes or ``timeout_s`` seconds.

    Raises:
        Refusal: 413 too large (by ``Content-Length`` before reading, or by the bytes read),
            400 a malformed ``Content-Length``, 408 a body that arrives too slowly.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 20:
            raise Refusal(400, "bad_request", "Content-Length is not a byte count")
        if int(declared) > limit:
            raise Refusal(413, "body_too_large", _too_large(limit))
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refusal(413, "body_too_large", _too_large(limit))
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout_s)
    except TimeoutError:
        msg = f"the body did not arrive within {timeout_s:g} s"
        raise Refusal(408, "body_timeout", msg) from None
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"the body is larger than {limit} bytes (the service's max_body_bytes)"


def _no_constants(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            msg = f"duplicate key {key[:40]!r} in a JSON object"
            raise ValueError(msg)
        seen.add(key)
    return dict(pairs)


def parse_json(body: bytes) -> Any:
    """``body`` as strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, bounded nesting.

    Raises:
        Refusal: 400 with where and why it is not JSON.
    """
    if not body.strip():
        raise Refusal(400, "invalid_json", "the body is empty: send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"the body is not UTF-8 (byte {exc.start})"
        raise Refusal(400, "invalid_json", msg) from None
    try:
        return json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        msg = f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise Refusal(400, "invalid_json", msg) from None
    except RecursionError:
        raise Refusal(400, "invalid_json", "the body's JSON is nested too deeply") from None
    except ValueError as exc:  # our hooks, and integers past Python's digit limit
        raise Refusal(400, "invalid_json", f"the body is not accepted JSON: {exc}") from None
