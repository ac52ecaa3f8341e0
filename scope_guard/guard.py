"""``ScopeGuard``: assess a response with every detector, decide, log. Knows nothing of LangChain.

One reader pass serves every probe detector; the grounding check runs once and feeds both the
detectors that use its features and the report's flagged claims. A failure of the guard itself
never escapes unless asked: ``failure_mode="open"`` lets the answer pass, ``"closed"`` serves the
fallback; both log the failure and count it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from scope_guard._version import __version__
from scope_guard.errors import ArtifactError, ConfigError
from scope_guard.guard_inputs import InputLimits, check_meta, prepare_exchange
from scope_guard.guard_parts import build_report, failure_report, grounding_summary, to_exchange
from scope_guard.policy import Policy, RiskThresholds
from scope_guard.prompting import render_prompt
from scope_guard.risklog.keys import resolve_log_key
from scope_guard.risklog.record import RiskLogSink, RiskRecord
from scope_guard.sites import Site, SiteKind
from scope_guard.types import Exchange, Outcome, RiskReport

if TYPE_CHECKING:
    from detectors.bundle import DetectorBundle
    from detectors.grounding import GroundingDetector, GroundingResult
    from detectors.probe import ProbeDetector
    from scope_guard.reader import Reader, Reading

__all__ = [
    "HEURISTIC_THRESHOLDS",
    "GuardStats",
    "OutcomeRule",
    "ScopeGuard",
    "bundle_reader_sites",
]

logger = logging.getLogger(__name__)

OutcomeRule: TypeAlias = Callable[[RiskReport], Outcome]
"""What a caller serves for a report (see :meth:`ScopeGuard.assess`)."""

# Without a bundle, the grounding check's uncalibrated heuristic risk stands in for fabrication.
HEURISTIC_THRESHOLDS = RiskThresholds(warn=0.5, regenerate=0.7, fallback=0.9)


class GuardStats:
    """Thread-safe counters: assessments, actions, and failures of the guard itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.assessed = 0
        self.failures = 0
        self.log_failures = 0
        self.actions: Counter[str] = Counter()

    def count(self, report: RiskReport) -> None:
        with self._lock:
            self.assessed += 1
            self.actions[report.decision.action.value] += 1
            if report.error is not None:
                self.failures += 1

    def count_log_failure(self) -> None:
        with self._lock:
            self.log_failures += 1


class ScopeGuard:
    """Scores responses for fabrication, sycophancy and deception and decides what to do.

    Args:
        detectors: Probe detectors (from a bundle). The one named like its risk is that risk's
            primary detector (the policy acts on it); others (baselines) are reported only.
        reader: The reader; required when a detector reads activations.
        grounding: The grounding detector; a default one is made when a detector needs it or
            when there are no detectors (then its heuristic risk is the fabrication score).
        policy: Per-risk thresholds; default from each primary detector's calibrated threshold.
        risk_log: A sink, a path (``.db``/``.sqlite``: SQLite; ``.jsonl``), a
            ``postgresql://`` URL (one log shared by many hosts; the ``postgres`` extra),
            ``"logging"``, or ``None`` (no log).
        failure_mode: ``"open"`` (the answer passes) or ``"closed"`` (the fallback is served)
            when the guard itself fails.
        prompt_mode: What the reader reads as the user turn: ``"rendered"`` (question + contexts
            rendered the way calibration data is, the default, so runtime matches calibration)
            or ``"observed"`` (the prompt the generator saw, when known).
        log_text: Keep raw texts in the risk log: question, prompt, response, contexts, flagged
            claims' texts and unsupported terms, unredacted error messages. Otherwise records
            hold spans (character offsets) and keyed hashes only.
        log_key: The secret of the log's keyed text hashes (str or bytes, >= 16 bytes); by
            default ``SCOPE_GUARD_LOG_KEY``, else a ``<log>.key`` file created beside a SQLite
            or JSONL log (see :mod:`scope_guard.risklog.keys`, which also says what the hash
            does and does not protect).
        input_limits: The most the guard reads of one exchange; longer inputs are cut (and
            reported in ``RiskReport.truncated``) instead of refused, and ``meta`` must be
            bounded JSON. Lowered to what the grounding check accepts.
        token_risk: Compute per-token risk for span highlighting.
        raise_errors: Re-raise the guard's own failures (for debugging) instead of degrading.
    """

    def __init__(
        self,
        *,
        detectors: Sequence[ProbeDetector] = (),
        reader: Reader | None = None,
        grounding: GroundingDetector | None = None,
        policy: Policy | None = None,
        risk_log: RiskLogSink | str | os.PathLike[str] | None = None,
        failure_mode: Literal["open", "closed"] = "open",
        prompt_mode: Literal["rendered", "observed"] = "rendered",
        log_text: bool = False,
        token_risk: bool = True,
        raise_errors: bool = False,
        versions: Mapping[str, str] | None = None,
        log_key: str | bytes | None = None,
        input_limits: InputLimits | None = None,
    ) -> None:
        if failure_mode not in ("open", "closed"):
            msg = f"failure_mode must be 'open' or 'closed', got {failure_mode!r}"
            raise ConfigError(msg)
        if prompt_mode not in ("rendered", "observed"):
            msg = f"prompt_mode must be 'rendered' or 'observed', got {prompt_mode!r}"
            raise ConfigError(msg)
        self.detectors = list(detectors)
        _check_grounding_layouts(self.detectors)
        self.primary = self._primaries(self.detectors)
        needs_reader = any(d.needs_reader for d in self.detectors)
        if needs_reader and reader is None:
            msg = "these detectors read activations: give the reader they were calibrated with"
            raise ConfigError(msg)
        if reader is not None:
            missing = {s for d in self.detectors for s in d.sites} - set(reader.sites)
            if missing:
                msg = f"the reader does not capture {sorted(map(str, missing))}"
                raise ConfigError(msg)
        self.reader = reader if needs_reader else None
        self.heuristic = not self.detectors
        if grounding is None and (self.heuristic or any(d.needs_grounding for d in self.detectors)):
            from detectors.grounding import GroundingDetector

            grounding = GroundingDetector()
        self.grounding = grounding
        if policy is None:
            rules: dict[str, RiskThresholds] = {
                risk: RiskThresholds.from_calibrated(det.threshold)
                for risk, det in self.primary.items()
            }
            if self.heuristic:
                rules["fabrication"] = HEURISTIC_THRESHOLDS
            policy = Policy(rules)
        self.policy = policy
        self.risk_log = _open_log(risk_log)
        self.log_key = (
            resolve_log_key(self.risk_log, log_key) if self.risk_log is not None else None
        )
        self.input_limits = (input_limits or InputLimits()).within(self.grounding)
        self.failure_mode = failure_mode
        self.prompt_mode = prompt_mode
        self.log_text = log_text
        self.token_risk = token_risk
        self.raise_errors = raise_errors
        self.stats = GuardStats()
        self.versions = {"scope_guard": __version__, **dict(versions or {})}
        if self.reader is not None:
            self.versions.update(
                reader=self.reader.name, reader_fingerprint=self.reader.fingerprint
            )

    @staticmethod
    def _primaries(detectors: Sequence[ProbeDetector]) -> dict[str, ProbeDetector]:
        primary: dict[str, ProbeDetector] = {}
        for det in detectors:
            risk = str(det.risk)
            if det.name == risk or risk not in primary:
                if risk in primary and primary[risk].name == risk:
                    continue
                primary[risk] = det
        return primary

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike[str],
        *,
        reader: Reader | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        **kwargs: Any,
    ) -> ScopeGuard:
        """A guard with the detectors of a bundle (and its reader, loaded when not given).

        The bundle's ``reader.source`` chooses the reader loaded here (a hub id is fetched
        unless ``HF_HUB_OFFLINE`` is set; the source is logged first). Its hashes detect
        corruption, not authorship: a bundle is as trustworthy as where it came from.

        Raises:
            ArtifactError: the bundle is altered or was made for another reader.
        """
        from detectors.bundle import DetectorBundle, sha256_file
        from scope_guard.reader import Reader as ReaderClass
        from scope_guard.reader.reader import MINIATURE_SOURCE

        bundle = DetectorBundle.load(path)
        sites = bundle_reader_sites(bundle)
        if sites and reader is None:
            spec = bundle.reader
            if spec is None or not spec.source:
                msg = f"bundle {path} does not say where its reader is: pass reader="
                raise ConfigError(msg)
            max_tokens = spec.max_tokens or 2048
            bundle.reader_source(path)  # logs what the bundle asks to load, before loading it
            lookback, surprisal = bundle.needs_lookback, bundle.needs_surprisal
            if spec.source == MINIATURE_SOURCE:
                reader = ReaderClass.miniature(
                    sites, max_tokens=max_tokens, lookback=lookback, surprisal=surprisal
                )
            else:
                try:  # HF_HUB_OFFLINE is honoured: from_pretrained reads it at call time
                    reader = ReaderClass.from_pretrained(
                        spec.source,
                        sites,
                        dtype=dtype,
                        device=device,
                        max_tokens=max_tokens,
                        lookback=lookback,
                        surprisal=surprisal,
                    )
                except ArtifactError as exc:
                    msg = f"bundle {path} names the reader {spec.source!r}, unavailable: {exc}"
                    raise ArtifactError(msg) from exc
        if reader is not None:
            bundle.check_reader(reader)
        versions = {
            **dict(kwargs.pop("versions", None) or {}),
            "bundle": sha256_file(Path(path) / "manifest.json")[:16],
        }
        kwargs.setdefault("prompt_mode", bundle.training.get("prompt_mode", "rendered"))
        return cls(
            detectors=list(bundle.detectors.values()),
            reader=reader,
            versions=versions,
            **kwargs,
        )

    # ------------------------------------------------------------------ assessing
    def assess(
        self, exchange: Exchange | Mapping[str, Any], *, outcome: OutcomeRule | None = None
    ) -> RiskReport:
        """Assess one response, decide, and log the record.

        Args:
            exchange: The response and what it was generated from.
            outcome: What the caller serves for a report (the LangChain integration passes
                its rule), stamped on the report and its risk record before the record is
                written; without it the report's ``outcome`` is ``None``.
        """
        return self.assess_batch([exchange], outcome=outcome)[0]

    async def aassess(
        self, exchange: Exchange | Mapping[str, Any], *, outcome: OutcomeRule | None = None
    ) -> RiskReport:
        """:meth:`assess` in a worker thread, so the event loop is never blocked."""
        return await asyncio.to_thread(self.assess, exchange, outcome=outcome)

    def assess_batch(
        self,
        exchanges: Sequence[Exchange | Mapping[str, Any]],
        *,
        outcome: OutcomeRule | None = None,
    ) -> list[RiskReport]:
        """Assess many responses with one batched reader pass (``outcome``: see :meth:`assess`)."""
        items = [to_exchange(e) for e in exchanges]
        for item in items:  # the caller's metadata is stored as given: it must be bounded JSON
            check_meta(item.meta, self.input_limits)
        try:
            reports = self._assess(items)
        except Exception as exc:  # the guard's own failure must not break the host chain
            if self.raise_errors:
                raise
            if len(items) > 1:  # isolate the bad exchange: assess the others one by one
                return [self.assess(item, outcome=outcome) for item in items]
            _log_failure(items[0], exc, log_text=self.log_text)
            reports = [failure_report(items[0], exc, self.failure_mode, self.versions)]
        if outcome is not None:  # before logging: the record says what was served
            reports = [r.model_copy(update={"outcome": outcome(r)}) for r in reports]
        for item, report in zip(items, reports, strict=True):
            self.stats.count(report)
            self._log(item, report)
        return reports

    def _reader_prompt(self, exchange: Exchange) -> str:
        if self.prompt_mode == "observed" and exchange.prompt is not None:
            return exchange.prompt
        return render_prompt(exchange.question, exchange.contexts)

    def _assess(self, originals: list[Exchange]) -> list[RiskReport]:
        start = time.perf_counter()
        # Score what any generator may produce: cut to bounded lengths, invalid code points out.
        prepared = [prepare_exchange(ex, self.input_limits) for ex in originals]
        items = [p.exchange for p in prepared]
        active = [i for i, ex in enumerate(items) if ex.response.strip()]
        groundings: dict[int, GroundingResult] = {}
        if self.grounding is not None:
            for i in active:
                ex = items[i]
                groundings[i] = self.grounding.check(
                    ex.response, ex.contexts, question=ex.question or None
                )
        t_grounding = time.perf_counter()
        readings: dict[int, Reading] = {}
        if self.reader is not None and active:
            batch = [(self._reader_prompt(items[i]), items[i].response) for i in active]
            readings = dict(zip(active, self.reader.read_batch(batch), strict=True))
        t_read = time.perf_counter()
        reports = []
        for i, ex in enumerate(items):
            scores = (
                [
                    det.score(readings.get(i), groundings.get(i), per_token=self.token_risk)
                    for det in self.detectors
                ]
                if i in active
                else []
            )
            reports.append(
                build_report(
                    ex,
                    scores=scores,
                    primary={risk: det.name for risk, det in self.primary.items()},
                    grounding=grounding_summary(groundings.get(i)),
                    heuristic=self.heuristic and i in active,
                    policy=self.policy,
                    versions=self.versions,
                    stand_in=bool(self.reader is not None and self.reader.is_stand_in),
                    timings_ms={
                        "grounding": (t_grounding - start) * 1000,
                        "read": (t_read - t_grounding) * 1000,
                    },
                    started=start,
                ).model_copy(update={"truncated": prepared[i].truncated})
            )
        return reports

    def _log(self, exchange: Exchange, report: RiskReport) -> None:
        if self.risk_log is None:
            return
        try:
            record = RiskRecord.from_report(
                exchange, report, log_text=self.log_text, key=self.log_key
            )
            self.risk_log.write(record)
        except Exception:  # a full disk must not break the host chain: log it and count it
            self.stats.count_log_failure()
            logger.exception("could not write the risk record of request %s", report.request_id)
            if self.raise_errors:
                raise

    # ------------------------------------------------------------------ LangChain sugar
    def callback(self, mode: Literal["monitor", "gate"] = "monitor", **kwargs: Any) -> Any:
        """A LangChain callback handler for this guard (imports LangChain only when called).

        ``mode="monitor"`` scores and logs without ever touching the host chain; ``"gate"``
        raises :class:`~scope_guard.errors.ScopeViolation` so a wrapper can act.
        """
        from scope_guard.integrations.langchain import ScopeGuardCallbackHandler

        return ScopeGuardCallbackHandler(self, mode=mode, **kwargs)

    def wrap(self, chain: Any, **kwargs: Any) -> Any:
        """``chain`` under this guard: regenerate, then fall back (see
        :func:`scope_guard.integrations.langchain.guard_runnable`)."""
        from scope_guard.integrations.langchain import guard_runnable

        return guard_runnable(chain, self, **kwargs)

    def close(self) -> None:
        if self.risk_log is not None:
            self.risk_log.close()

    def __enter__(self) -> ScopeGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bundle_reader_sites(bundle: DetectorBundle) -> tuple[Site, ...]:
    """The sites a reader for ``bundle`` captures (empty: no detector reads one).

    A bundle whose only reader block is surprisal reads no site, but a reader needs one: the
    residual output of the layer its spec fingerprints (the last, :meth:`DetectorBundle.
    reader_spec`) costs nothing more, since surprisal runs every layer anyway.
    """
    if bundle.sites or not bundle.needs_surprisal or bundle.reader is None:
        return bundle.sites
    return (Site(bundle.reader.fingerprint_layer, SiteKind.RESID_POST),)


def _log_failure(exchange: Exchange, exc: BaseException, *, log_text: bool) -> None:
    """Log a guard failure; without ``log_text`` its message is redacted as in the risk record,
    and the traceback (whose messages may quote the input) is shown at DEBUG level only."""
    message = f"{type(exc).__name__}: {exc}"
    if not log_text:
        from scope_guard.risklog.redact import redact_message

        texts = [exchange.question, exchange.prompt or "", exchange.response, *exchange.contexts]
        message = f"{type(exc).__name__}: {redact_message(str(exc), texts)}"
    logger.error(
        "scope-guard failed to assess request %s: %s",
        exchange.request_id,
        message,
        exc_info=exc if log_text or logger.isEnabledFor(logging.DEBUG) else None,
    )


def _open_log(target: RiskLogSink | str | os.PathLike[str] | None) -> RiskLogSink | None:
    if target is None:
        return None
    from scope_guard.risklog import open_risk_log

    return open_risk_log(target)


def _check_grounding_layouts(detectors: Sequence[ProbeDetector]) -> None:
    """Refuse, at construction rather than on every request, detectors calibrated on another
    version of the grounding features."""
    if not any(d.needs_grounding for d in detectors):
        return
    from detectors.feature_blocks import BlockKind
    from detectors.grounding import FEATURE_NAMES, FEATURES_VERSION

    for det in detectors:
        for block in det.blocks:
            if block.kind is BlockKind.GROUNDING and block.names != list(FEATURE_NAMES):
                msg = (
                    f"detector {det.name!r} was calibrated on grounding features "
                    f"v{block.version}; this scope-guard computes v{FEATURES_VERSION}: "
                    "recalibrate it (scope-guard calibrate)"
                )
                raise ArtifactError(msg)
