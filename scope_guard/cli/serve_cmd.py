"""``scope-guard serve``: the guard as an HTTP service (uvicorn, or Ray Serve with ``--ray``).

Endpoints: ``POST /assess``, ``POST /assess_batch``, ``GET /healthz``, ``GET /metrics``
(:mod:`scope_guard.serve.app`). The web dependencies come with the ``serve`` extra, Ray
Serve with the ``ray`` extra; both are imported only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from scope_guard.cli.console import note

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the guard over HTTP (/assess, /assess_batch, /healthz, /metrics)",
        description=(
            "Hosts one guard (a bundle's detectors and reader, or without --bundle the "
            "weight-free grounding heuristic) behind an HTTP API, batching concurrent requests "
            "for the reader and logging every served exchange once to --risk-log. Clients: "
            "scope_guard.integrations.langchain.RemoteGuard, or any HTTP client."
        ),
    )
    p.add_argument("--bundle", help="a bundle folder written by calibrate (default: no weights)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--risk-log", help="log every served exchange: .db/.sqlite or .jsonl")
    p.add_argument("--log-text", action="store_true", help="keep raw texts in the risk log")
    p.add_argument("--failure-mode", choices=["open", "closed"], default="open")
    p.add_argument("--token-risk", action="store_true", help="per-token risk in the reports")
    p.add_argument("--reader", help="override the bundle's reader location")
    p.add_argument("--dtype", default="auto", help="reader dtype: auto, bfloat16, float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=8, help="reader batch size")
    p.add_argument("--max-batch", type=int, default=16, help="exchanges per micro-batch (1: off)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="micro-batch gathering wait")
    p.add_argument("--max-queue", type=int, default=1024, help="waiting exchanges before 503")
    p.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024)
    p.add_argument("--request-timeout", type=float, default=60.0, help="seconds, then 504")
    p.add_argument("--ray", action="store_true", help="run as a Ray Serve deployment")
    p.add_argument("--ray-address", help="a running Ray cluster (default: start a local one)")
    p.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas (with --ray)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from scope_guard.errors import ConfigError
    from scope_guard.serve import GuardSpec, ServeSettings
    from scope_guard.serve._extras import require

    try:
        settings = ServeSettings(
            max_body_bytes=args.max_body_bytes,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            request_timeout_s=args.request_timeout,
        )
        spec = GuardSpec(
            bundle=args.bundle,
            risk_log=args.risk_log,
            log_text=args.log_text,
            failure_mode=args.failure_mode,
            reader=args.reader,
            dtype=args.dtype,
            device=args.device,
            batch_size=args.batch_size,
            token_risk=args.token_risk,
        )
    except ValueError as exc:  # pydantic's ValidationError names the bad setting
        raise ConfigError(str(exc)) from None
    if args.ray:
        from scope_guard.serve.ray_app import run_on_ray

        note(f"serving on Ray Serve at http://{args.host}:{args.port} ({args.replicas} replicas)")
        run_on_ray(
            spec,
            settings,
            host=args.host,
            port=args.port,
            address=args.ray_address,
            num_replicas=args.replicas,
        )
        return 0
    uvicorn: Any = require("uvicorn", "serve")
    from scope_guard.serve import create_app

    if not args.bundle:
        note("no --bundle: the weight-free guard (uncalibrated grounding heuristic)")
    app = create_app(spec.build(), settings)
    note(f"serving the guard at http://{args.host}:{args.port} (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")
    return 0
