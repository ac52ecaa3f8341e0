"""Hostile bodies: too big, not JSON, the wrong shape or types. Each is a 4xx with a clear
message, never a 500 or a hang, and nothing reaches the guard or the risk log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from serve_builders import exchange

from scope_guard.guard import ScopeGuard
from scope_guard.serve import MissingExtraError, ServeSettings, create_app
from scope_guard.serve._extras import require
from tests.integrations.lc_builders import MemorySink

LIMIT = 64 * 1024
SETTINGS = ServeSettings(max_body_bytes=LIMIT, max_batch_request=4, body_timeout_s=0.5)


def _deep(levels: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


CASES: list[tuple[str, Any, int, str]] = [
    ("empty", b"", 400, "invalid_json"),
    ("truncated", b'{"exchange": {"response": "x"', 400, "invalid_json"),
    ("not utf-8", b'{"exchange": {"response": "\xff\xfe"}}', 400, "invalid_json"),
    ("NaN", b'{"exchange": {"response": "x", "meta": {"a": NaN}}}', 400, "invalid_json"),
    ("Infinity", b'{"exchange": {"response": "x", "meta": {"a": -Infinity}}}', 400, "invalid_json"),
    ("duplicate keys", b'{"exchange": {"response": "x", "response": "y"}}', 400, "invalid_json"),
    ("nested 30k deep", b"[" * 30_000 + b"]" * 30_000, 400, "invalid_json"),
    (
        "5000-digit int",
        b'{"exchange": {"response": "x", "attempt": ' + b"9" * 5000 + b"}}",
        400,
        "invalid_json",
    ),
    ("a list", b"[]", 422, "invalid_request"),
    ("a string", b'"assess me"', 422, "invalid_request"),
    ("no exchange", b"{}", 422, "invalid_request"),
    (
        "unknown field",
        b'{"exchange": {"response": "x"}, "callback": "http://evil"}',
        422,
        "invalid_request",
    ),
    ("exchange a list", b'{"exchange": ["x"]}', 422, "invalid_request"),
    ("no response", b'{"exchange": {"question": "q"}}', 422, "invalid_exchange"),
    ("response a number", b'{"exchange": {"response": 5}}', 422, "invalid_exchange"),
    (
        "contexts a string",
        b'{"exchange": {"response": "x", "contexts": "doc"}}',
        422,
        "invalid_exchange",
    ),
    ("attempt 0", b'{"exchange": {"response": "x", "attempt": 0}}', 422, "invalid_exchange"),
    (
        "meta 20 deep",
        json.dumps({"exchange": {"response": "x", "meta": _deep(20)}}).encode(),
        422,
        "invalid_exchange",
    ),
    (
        "unknown outcome",
        b'{"exchange": {"response": "x"}, "outcomes": {"allow": "ignore"}}',
        422,
        "invalid_request",
    ),
    (
        "unknown action",
        b'{"exchange": {"response": "x"}, "outcomes": {"shrug": "answer"}}',
        422,
        "invalid_request",
    ),
]


def _post(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://guard") as client:
            try:
                return await client.post(path, **kwargs)
            finally:
                await app.state.batcher.stop()

    return asyncio.run(asyncio.wait_for(main(), 20))  # never a hang


@pytest.mark.parametrize(("name", "body", "status", "kind"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_body_is_refused_with_a_clear_4xx(
    name: str, body: bytes, status: int, kind: str
) -> None:
    sink = MemorySink()
    app = create_app(ScopeGuard(risk_log=sink), SETTINGS)
    reply = _post(app, "/assess", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    data = reply.json()
    assert data["error"] == kind
    assert data["detail"]
    assert sink.records == []


def test_a_refusal_does_not_quote_the_offending_text() -> None:
    secret = "patient 4711 has HIV"
    body = {"exchange": {"response": "x", "contexts": [secret, 5]}}
    reply = _post(create_app(ScopeGuard(), SETTINGS), "/assess", json=body)
    assert reply.status_code == 422
    assert "contexts.1" in reply.json()["detail"]
    assert secret not in reply.text


def test_content_length_over_the_limit_is_refused_before_reading() -> None:
    app = create_app(ScopeGuard(), SETTINGS)
    body = json.dumps({"exchange": exchange(1, response="x" * (2 * LIMIT))}).encode()
    reply = _post(app, "/assess", content=body)
    assert reply.status_code == 413
    assert reply.json()["error"] == "body_too_large"
    assert str(LIMIT) in reply.json()["detail"]


def test_a_streamed_body_without_length_is_cut_at_the_limit() -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(1000):  # 16 MB if it were all read
            sent.append(1)
            yield b" " * 16384

    reply = _post(create_app(ScopeGuard(), SETTINGS), "/assess", content=chunks())
    assert reply.status_code == 413
    assert len(sent) < 20


def test_a_body_that_trickles_in_is_408() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"exchange": '
        await asyncio.sleep(5)
        yield b"{}}"

    reply = _post(create_app(ScopeGuard(), SETTINGS), "/assess", content=trickle())
    assert reply.status_code == 408
    assert reply.json()["error"] == "body_timeout"


@pytest.mark.parametrize("length", ["abc", "-1", "1" * 30])
def test_a_malformed_content_length_is_400(length: str) -> None:
    app = create_app(ScopeGuard(), SETTINGS)
    reply = _post(app, "/assess", content=b"{}", headers={"content-length": length})
    assert reply.status_code == 400


def test_another_content_type_is_415() -> None:
    app = create_app(ScopeGuard(), SETTINGS)
    reply = _post(app, "/assess", content=b"response=x", headers={"content-type": "text/plain"})
    assert reply.status_code == 415


def test_unknown_paths_and_methods_are_404_and_405() -> None:
    async def main() -> tuple[int, int]:
        app = create_app(ScopeGuard(), SETTINGS)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://guard") as client:
            return (await client.get("/admin")).status_code, (
                await client.get("/assess")
            ).status_code

    assert asyncio.run(main()) == (404, 405)


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"exchanges": []}, 422, "invalid_request"),
        ({"exchanges": [exchange(i) for i in range(5)]}, 413, "batch_too_large"),
        ({"exchanges": [exchange(1)], "outcomes": []}, 422, "invalid_request"),
        ({"exchanges": [exchange(1), {"question": "no response"}]}, 422, "invalid_exchange"),
    ],
    ids=["empty", "over max_batch_request", "outcomes misaligned", "one bad exchange"],
)
def test_a_bad_batch_is_refused_whole(body: dict[str, Any], status: int, kind: str) -> None:
    sink = MemorySink()
    reply = _post(create_app(ScopeGuard(risk_log=sink), SETTINGS), "/assess_batch", json=body)
    assert reply.status_code == status
    assert reply.json()["error"] == kind
    assert sink.records == []


def test_lone_surrogates_are_scored_not_refused() -> None:
    sink = MemorySink()
    body = b'{"exchange": {"response": "Acme \\ud800 was founded", "contexts": ["Acme"]}}'
    reply = _post(create_app(ScopeGuard(risk_log=sink), SETTINGS), "/assess", content=body)
    assert reply.status_code == 200
    assert len(sink.records) == 1


def test_a_missing_extra_names_it() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'scope-guard\[serve\]'"):
        require("scope_guard_no_such_module", "serve")
