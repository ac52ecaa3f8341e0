"""``scope-guard demo``: a guarded RAG chain over built-in documents, end to end."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from scope_guard.cli.console import note, out, table

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run a guarded RAG chain over built-in documents (no weights needed)",
        description=(
            "Runs a small LangChain RAG chain (keyword retriever over built-in documents, a "
            "scripted chat model whose answers are grounded, fabricated or sycophantic) under "
            "the guard, shows the scores and decisions per request, a regeneration and a "
            "fallback, and writes the SQLite risk log. Without --model/--bundle the reader is "
            "the miniature stand-in (random weights, labeled as such)."
        ),
    )
    p.add_argument("--bundle", help="use this detector bundle (and its reader)")
    p.add_argument("--model", help="reader model (local folder or hub id) to calibrate with")
    p.add_argument("--sae", action="append", default=[], help="[SITE=]SOURCE with --model")
    p.add_argument("--log", help="risk log path (default: ~/.cache/scope_guard/demo/risk.db)")
    p.add_argument("--max-attempts", type=int, default=2)
    p.add_argument("--rebuild", action="store_true", help="recalibrate the demo bundle")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=run)


def _guard(args: argparse.Namespace, cache: Path, log: Path) -> Any:
    from scope_guard.cli.demo_bundle import build_demo_bundle
    from scope_guard.cli.inputs import MINIATURE, open_reader, open_saes
    from scope_guard.guard import ScopeGuard

    if args.bundle:
        return ScopeGuard.from_bundle(
            args.bundle, risk_log=log, dtype=args.dtype, device=args.device
        )
    source = args.model or MINIATURE
    saes = open_saes(args.sae, reader_source=source)
    reader = open_reader(source, list(saes), dtype=args.dtype, device=args.device, max_tokens=1024)
    from detectors.grounding import FEATURES_VERSION
    from scope_guard._version import __version__

    name = "stand-in" if source == MINIATURE else reader.fingerprint[:12]
    # A new scope-guard or grounding feature set recalibrates the demo bundle.
    folder = cache / f"bundle-{name}-v{__version__}-g{FEATURES_VERSION}"
    bundle = build_demo_bundle(folder, reader, saes, rebuild=args.rebuild)
    guard = ScopeGuard.from_bundle(bundle, reader=reader, risk_log=log)
    return ScopeGuard.from_bundle(
        bundle, reader=reader, risk_log=log, policy=_demo_policy(guard, reader.is_stand_in)
    )


def _demo_policy(guard: Any, stand_in: bool) -> Any:
    """Regenerate at each detector's calibrated threshold (0.5 at the latest) and fall back
    only when attempts run out, so the demo shows both. With the stand-in reader, sycophancy
    (an SAE-only probe of a random model) is reported but not acted on: only fabrication has
    real (grounding) inputs."""
    from scope_guard.policy import Policy, RiskThresholds

    rules = {}
    for risk, det in guard.primary.items():
        if stand_in and risk != "fabrication":
            continue
        # Stricter than the default (regenerate from 0.5 at the latest): the demo's detectors
        # are fitted on a small synthetic set, and the demo is there to show the actions.
        regenerate = min(det.threshold, 0.5)
        rules[risk] = RiskThresholds(warn=regenerate / 2, regenerate=regenerate)
    return Policy(rules)


def run(args: argparse.Namespace) -> int:
    from scope_guard.demo_data import DEMO_DOCUMENTS, DEMO_REQUESTS, FALLBACK_ANSWER
    from scope_guard.integrations.langchain import guard_runnable
    from scope_guard.integrations.langchain.demo_chain import ReportCollector, demo_chain
    from scope_guard.reader.miniature import default_cache_root

    cache = default_cache_root() / "demo"
    log = Path(args.log) if args.log else cache / "risk.db"
    log.parent.mkdir(parents=True, exist_ok=True)
    guard = _guard(args, cache, log)
    if guard.reader is not None and guard.reader.is_stand_in:
        out("NOTE: the reader is the miniature STAND-IN (random weights): its SAE probe scores")
        out("      mean nothing; the grounding features inside the fabrication detector are real.")
    chain = demo_chain(DEMO_DOCUMENTS, {r["question"]: r["answers"] for r in DEMO_REQUESTS})
    guarded = guard_runnable(chain, guard, max_attempts=args.max_attempts, fallback=FALLBACK_ANSWER)
    for number, request in enumerate(DEMO_REQUESTS, start=1):
        collector = ReportCollector()
        answer = guarded.invoke(
            {"question": request["question"]}, config={"callbacks": [collector]}
        )
        out(f"\n[{number}] {request['label']}: {request['question']}")
        rows = []
        for event in collector.events:
            report = event["report"]
            scores = report.get("scores", {})
            claims = [c["text"] for c in (report.get("grounding") or {}).get("flagged_claims", [])]
            rows.append(
                [
                    event.get("attempt"),
                    report["decision"]["action"],
                    _score(scores, "fabrication"),
                    _score(scores, "sycophancy"),
                    "; ".join(claims)[:70] or "-",
                ]
            )
        out(table(["attempt", "action", "fabrication", "sycophancy", "flagged claims"], rows))
        served = "fallback" if answer == FALLBACK_ANSWER else "answer"
        out(f"served ({served}): {answer}")
    stats = guard.stats
    guard.close()
    out(
        f"\n{stats.assessed} assessments, actions {dict(stats.actions)}; guard failures: "
        f"{stats.failures}"
    )
    out(f"risk log: {log}   (try: scope-guard log summary {log})")
    note("done")
    return 0


def _score(scores: dict[str, float], risk: str) -> str:
    return f"{scores[risk]:.2f}" if risk in scores else "-"
