"""Builders for the service tests: a grounding-and-reader bundle on the miniature reader, a
real uvicorn server on a free loopback port, and small hostile servers for the client."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scope_guard.types import Action, Outcome

CONTEXTS = [
    "Acme Corp was founded in 1990 in Oslo by Kari Nordmann.",
    "Acme Corp employs 120 people and sells industrial valves.",
]
GROUNDED = "Acme Corp was founded in 1990 in Oslo."
FABRICATED = "Acme Corp was founded in 1874 in Berlin by Johann Schmidt, with 4500 employees."
TABLE = {
    "allow": "answer",
    "warn": "answer",
    "regenerate": "retry",
    "fallback": "fallback",
    "block": "blocked",
}
TABLE_ENUM = {Action(a): Outcome(o) for a, o in TABLE.items()}


def exchange(i: int, response: str = GROUNDED, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{i}",
        "question": f"When was Acme founded? ({i})",
        "contexts": CONTEXTS,
        "response": response,
        **extra,
    }


def miniature_bundle(folder: Path) -> Path:
    """A bundle whose fabrication probe reads the miniature reader's raw activations (random
    weights, so the score means nothing but the reader really runs) plus a sycophancy one."""
    from detectors.bundle import DetectorBundle
    from detectors.calibration_map import CalibrationMap
    from detectors.feature_blocks import BlockKind, FeatureBlock
    from detectors.probe import ProbeDetector
    from scope_guard.features import Pooling
    from scope_guard.reader import Reader
    from scope_guard.risks import Risk
    from scope_guard.sites import Site

    site = Site.parse("resid_post@3")
    reader = Reader.miniature([site])
    d = reader.d_model
    rng = np.random.default_rng(0)
    detectors = [
        ProbeDetector(
            name=risk,
            risk=Risk(risk),
            blocks=[FeatureBlock(kind=BlockKind.RAW, site=str(site), d=d, pooling=Pooling.MEAN)],
            coef=rng.normal(size=d) * 0.1,
            intercept=0.0,
            calibration=CalibrationMap(method="sigmoid"),
            threshold=0.5,
        )
        for risk in ("fabrication", "sycophancy")
    ]
    spec = DetectorBundle.reader_spec(reader, detectors)
    return DetectorBundle(detectors, reader=spec).save(folder)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL.

    The lifespan runs (the batcher starts and, on exit, finishes its queue; the guard closes).
    """
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = "uvicorn did not start"
            raise RuntimeError(msg)
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        # A server that cannot stop is a defect of the app under test; left running, its
        # thread would go on (a busy handler: spinning) through the rest of the session.
        if thread.is_alive():
            msg = "uvicorn did not stop within 15 s"
            raise RuntimeError(msg)


def hostile_app(kind: str, hits: list[str]) -> Any:
    """A server that answers ``/assess`` badly: ``500``, ``503``, ``not_json``,
    ``not_report``, ``other_request``, ``slow`` (answers after 2 s, or never if the client
    hangs up first), ``huge`` (bytes without end, for as long as the client reads them),
    counting each hit in ``hits``."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def hung_up(request: Any) -> bool:
        # uvicorn drops what is sent to a closed connection without waiting, so a handler must
        # look for the hang-up itself, or it runs on (an endless stream: without yielding to
        # the event loop, which then can never shut the server down).
        await asyncio.sleep(0)
        return bool(await request.is_disconnected())

    async def assess(request: Any) -> Any:
        hits.append(kind)
        body = await request.json()
        if kind == "500":
            return JSONResponse({"error": "boom", "detail": "internal"}, status_code=500)
        if kind == "503":
            return JSONResponse({"error": "overloaded", "detail": "full"}, status_code=503)
        if kind == "not_json":
            return Response(b"<html>proxy error</html>", media_type="text/html")
        if kind == "not_report":
            return JSONResponse({"hello": "world"})
        if kind == "other_request":
            return JSONResponse(
                {
                    "request_id": "someone-else",
                    "created": "2025-01-01T00:00:00+00:00",
                    "decision": {"action": "allow"},
                }
            )
        if kind == "huge":
            from starlette.responses import StreamingResponse

            async def endless() -> Any:
                while not await hung_up(request):
                    yield b" " * 65536

            return StreamingResponse(endless(), media_type="application/json")
        if kind == "slow":
            deadline = asyncio.get_running_loop().time() + 2
            while asyncio.get_running_loop().time() < deadline:
                if await hung_up(request):
                    return Response(status_code=499)  # nobody reads it
                await asyncio.sleep(0.01)
        return JSONResponse({"request_id": body["exchange"]["request_id"]})

    return Starlette(routes=[Route("/assess", assess, methods=["POST"])])
