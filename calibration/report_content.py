"""What a rendered report says, independent of its format: a flat list of blocks.

:func:`report_blocks` decides the content once (section order, row order, number formatting,
warnings); the Markdown and HTML renderers in :mod:`calibration.report` only lay the blocks out,
so the two formats cannot drift apart. Rows are ordered so that every SAE probe sits next to the
raw-activation probe for the same risk, and a risk whose SAE probe lacks that baseline is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from calibration.metrics import Interval, Metrics
from calibration.report_model import DetectorEvaluation, EvaluationReport, TokenExample
from calibration.report_plots import figure_names
from calibration.report_reading import reading

__all__ = [
    "Block",
    "Bullets",
    "Cell",
    "Estimate",
    "Figure",
    "Heading",
    "Highlight",
    "Link",
    "Notes",
    "Paragraph",
    "Table",
    "estimate",
    "format_interval",
    "format_number",
    "report_blocks",
]

_METRICS = (
    ("AUROC", "auroc"),
    ("AUPRC", "auprc"),
    ("F1", "f1"),
    ("Precision", "precision"),
    ("Recall", "recall"),
    ("ECE", "ece"),
    ("Brier", "brier"),
    ("TPR@1%FPR", "tpr_at_1_fpr"),
    ("TPR@5%FPR", "tpr_at_5_fpr"),
)
_METRIC_HEADERS = ("n (pos.)", *(name for name, _ in _METRICS))


class Link(NamedTuple):
    """A hyperlink; ``url`` is always http(s)."""

    text: str
    url: str


class Estimate(NamedTuple):
    """A figure with its interval, preformatted (``value`` is :data:`MISSING` when undefined;
    ``interval`` is then ``None``). Renderers decide how the two sit together: Markdown on one
    line, HTML with the interval free to wrap under the value so that wide tables fit."""

    value: str
    interval: str | None

    def __str__(self) -> str:
        return self.value if self.interval is None else f"{self.value} {self.interval}"


class Untrusted(str):
    """Cell text that came from data or a downloaded bundle (latent contexts): renderers show
    it literally (Markdown: no link, image or emphasis; HTML: escaped like every cell)."""


Cell = str | Link | Estimate


class Heading(NamedTuple):
    """A section heading; ``level`` 2 for sections, 3 inside a detector's section."""

    text: str
    level: int = 2


class Notes(NamedTuple):
    """Lines to show prominently (stand-in warnings, missing baselines)."""

    items: list[str]


class Paragraph(NamedTuple):
    """A paragraph of plain text."""

    text: str


class Bullets(NamedTuple):
    """Plain facts as a bulleted list."""

    items: list[str]


class Table(NamedTuple):
    """A table of preformatted cells (numbers already rounded, NaN already ``"n/a"``)."""

    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


class Figure(NamedTuple):
    """A PNG of :mod:`calibration.report_plots`, by file name."""

    name: str
    caption: str


class Highlight(NamedTuple):
    """A response with its per-token risk, laid out as text pieces.

    Attributes:
        caption: What the row is (label, probability, why it is shown).
        tokens: The response as ``(text, risk)`` pieces: a token with its risk, or the text
            between tokens with ``None``; for a renderer that shades every token.
        runs: The same text as ``(text, risk)`` pieces where each risky run (tokens at or above
            ``threshold``, merged) is one piece with its peak risk and the rest has ``None``;
            for a renderer that can only mark.
        threshold: Where a token counts as risky.
    """

    caption: str
    tokens: list[tuple[str, float | None]]
    runs: list[tuple[str, float | None]]
    threshold: float


Block = Heading | Notes | Paragraph | Bullets | Table | Figure | Highlight

MISSING = "n/a"
"""How every renderer (HTML, Markdown, the CLI's tables) spells a figure that is undefined."""


def format_number(x: float) -> str:
    """``"0.873"``; :data:`MISSING` for NaN or an infinity."""
    return f"{x:.3f}" if math.isfinite(x) else MISSING


_number = format_number


def estimate(iv: Interval) -> Estimate:
    """The cell of an interval; :data:`MISSING` where the value is NaN (a slice too small)."""
    if not math.isfinite(iv.value):
        return Estimate(MISSING, None)
    return Estimate(_number(iv.value), f"[{_number(iv.low)}, {_number(iv.high)}]")


def format_interval(iv: Interval) -> str:
    """``"0.873 [0.850, 0.894]"``; ``"n/a"`` where the value is NaN (a slice too small to score)."""
    return str(estimate(iv))


def _plain(value: object, depth: int = 0) -> str:
    """A dataset / reader / split value as one line: ``"fabrication: n=500, positive=120"``."""
    if isinstance(value, Mapping):
        sep, kv = ("; ", ": ") if depth == 0 else (", ", "=")
        return sep.join(f"{key}{kv}{_plain(item, depth + 1)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_plain(item, depth + 1) for item in value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else MISSING
    return "none" if value is None else str(value)


def _parts(e: DetectorEvaluation) -> list[str]:
    return e.kind.split("+")


def _ordered(report: EvaluationReport) -> list[tuple[int, DetectorEvaluation]]:
    """(index, evaluation) grouped by risk (first-seen order): SAE probes, raw baseline, others."""
    risks = list(dict.fromkeys(e.risk for e in report.evaluations))

    def key(item: tuple[int, DetectorEvaluation]) -> tuple[int, int, int]:
        index, e = item
        rank = 0 if "sae" in _parts(e) else 1 if "raw" in _parts(e) else 2
        return risks.index(e.risk), rank, index

    return sorted(enumerate(report.evaluations), key=key)


def _warnings(report: EvaluationReport) -> list[str]:
    lines = []
    for risk in dict.fromkeys(e.risk for e in report.evaluations):
        parts = [_parts(e) for e in report.evaluations if e.risk == risk]
        if any("sae" in p for p in parts) and not any("raw" in p for p in parts):
            lines.append(f"{risk}: the SAE probe has no raw-activation baseline in this report.")
    return lines


def _metric_cells(m: Metrics) -> tuple[Cell, ...]:
    return (f"{m.n} ({m.n_positive})", *(estimate(getattr(m, a)) for _, a in _METRICS))


def _rule(e: DetectorEvaluation) -> str:
    if e.threshold_target is None:
        return e.threshold_rule
    return f"{e.threshold_rule} = {e.threshold_target:g}"


def _comparison(ordered: list[DetectorEvaluation]) -> Table:
    rows: list[tuple[Cell, ...]] = []
    for e in ordered:
        threshold = (_number(e.metrics.threshold), _rule(e), e.calibration_method)
        rows.append((e.detector, e.risk, e.kind, *_metric_cells(e.metrics), *threshold))
    headers = ("Detector", "Risk", "Kind", *_METRIC_HEADERS, "Threshold", "Rule", "Calibration")
    return Table(headers, rows)


def _breakdowns(ordered: list[DetectorEvaluation]) -> list[Block]:
    """Per breakdown field one table: per value, the detectors side by side."""
    blocks: list[Block] = []
    for field in dict.fromkeys(f for e in ordered for f in e.by_field):
        values = dict.fromkeys(v for e in ordered for v in e.by_field.get(field, {}))
        rows: list[tuple[Cell, ...]] = [
            (value, e.detector, *_metric_cells(e.by_field[field][value]))
            for value in values
            for e in ordered
            if value in e.by_field.get(field, {})
        ]
        blocks += [Heading(f"By {field}"), Table((field, "Detector", *_METRIC_HEADERS), rows)]
    return blocks


def _safe_url(url: str | None) -> str | None:
    """Keep only http(s) links: a ``javascript:`` URL in a report would be an injection."""
    return url if url and urlsplit(url).scheme in ("http", "https") else None


_CONTEXT_SEP = " · "


def _latents(e: DetectorEvaluation) -> Table:
    """Each latent with its Neuronpedia page, or else its top-activating contexts."""
    rows: list[tuple[Cell, ...]] = []
    for rank, lw in enumerate(e.top_latents, start=1):
        url = _safe_url(lw.url)
        contexts = Untrusted(_CONTEXT_SEP.join(lw.contexts))
        link: Cell = Link(f"{lw.site}/{lw.latent}", url) if url else contexts
        cells = (str(rank), lw.site, str(lw.latent), lw.pooling, f"{lw.weight:+.4f}")
        rows.append((*cells, link or "none"))
    return Table(("#", "Site", "Latent", "Pooling", "Weight", "Neuronpedia / top contexts"), rows)


def _heads(e: DetectorEvaluation) -> Table:
    rows: list[tuple[Cell, ...]] = [
        (str(rank), str(hw.layer), str(hw.head), f"{hw.weight:+.4f}")
        for rank, hw in enumerate(e.top_heads, start=1)
    ]
    return Table(("#", "Layer", "Head", "Weight"), rows)


def _token_probes(e: DetectorEvaluation) -> Table:
    names = list(dict.fromkeys(name for tp in e.token_probes for name in tp.weights))
    rows: list[tuple[Cell, ...]] = [
        (tp.site, str(tp.width), *(f"{tp.weights.get(n, 0.0):+.4f}" for n in names))
        for tp in e.token_probes
    ]
    return Table(("Site", "Width", *(f"Weight on {n}" for n in names)), rows)


def _pieces(text: str, spans: list[tuple[int, int, float]]) -> list[tuple[str, float | None]]:
    """``text`` cut at ``spans`` (sorted, non-overlapping after clipping): each span's text
    with its risk, the text between with ``None``."""
    out: list[tuple[str, float | None]] = []
    at = 0
    for start, end, risk in sorted(spans):
        start, end = max(start, at), min(end, len(text))
        if end <= start:
            continue
        if start > at:
            out.append((text[at:start], None))
        out.append((text[start:end], risk))
        at = end
    if at < len(text):
        out.append((text[at:], None))
    return out


def _source(example: TokenExample) -> str:
    if example.source == "token_probe":
        return "the token probe's probability that the token lies in a risky span"
    return "the detector's probability with the token standing for the whole response"


def _examples(e: DetectorEvaluation) -> list[Block]:
    first = e.examples[0]
    intro = (
        f"Per-token risk over the response of a few scored rows of your data: "
        f"{_source(first)}; marked at or above {_number(first.span_threshold)}, shaded by "
        "risk in the HTML page. Each row was scored by a detector that never saw it."
    )
    blocks: list[Block] = [Heading("Per-token risk", level=3), Paragraph(intro)]
    for x in e.examples:
        label = "risky" if x.label == 1 else "safe"
        caption = (
            f"{x.why}: labeled {label}, probability {_number(x.probability)} "
            f"(threshold {_number(e.metrics.threshold)})"
        )
        if x.cut:
            caption += "; response cut"
        tokens = _pieces(x.response, x.spans)
        runs = _pieces(x.response, x.risky)
        blocks.append(Highlight(caption, tokens, runs, x.span_threshold))
    return blocks


def _facts(e: DetectorEvaluation) -> Bullets:
    calibration = f"Calibration: {e.calibration_method}."
    if e.held_out_log_loss:
        losses = ", ".join(f"{k} {_number(v)}" for k, v in e.held_out_log_loss.items())
        calibration = f"Calibration: {e.calibration_method} (held-out log loss: {losses})."
    threshold = f"Threshold {_number(e.metrics.threshold)}"
    if e.threshold_rule == "fixed":
        threshold += " (fixed)."
    else:
        threshold += f", rule {_rule(e)} (chosen on out-of-fold training predictions)."
    facts = [threshold, calibration]
    if e.n_features:
        facts.append(f"Probe input: {e.n_features} features, {e.n_selected} nonzero coefficients.")
    if e.metrics.n_bootstrap:
        unit = "rows" if e.metrics.n_groups is None else f"{e.metrics.n_groups} groups"
        facts.append(f"Intervals: 95% bootstrap, {e.metrics.n_bootstrap} resamples of {unit}.")
    return Bullets(facts)


def _key_values(mapping: Mapping[str, object]) -> Table:
    return Table(("Field", "Value"), [(str(k), _plain(v)) for k, v in mapping.items()])


def _labeled_only(dataset: Mapping[str, object]) -> dict[str, object]:
    """The dataset summary without the risks that no row is labeled for (all zeros)."""
    out = dict(dataset)
    balance = dataset.get("class_balance")
    if isinstance(balance, Mapping):
        kept = {
            risk: counts
            for risk, counts in balance.items()
            if not (isinstance(counts, Mapping) and not counts.get("n"))
        }
        out["class_balance"] = kept or "no row is labeled for any risk"
    return out


def report_blocks(report: EvaluationReport) -> list[Block]:
    """The content of ``report`` in reading order (the title is the renderer's business)."""
    blocks: list[Block] = [Bullets([f"Created: {report.created}"])]
    notes = [*report.notes, *_warnings(report)]
    if notes:
        blocks.append(Notes(notes))
    summary = reading(report)
    if summary:
        blocks += [Heading("In short"), Paragraph(summary)]
    blocks += [Heading("Dataset"), _key_values(_labeled_only(report.dataset)), Heading("Reader")]
    blocks.append(_key_values(report.reader or {"reader": "none (grounding features only)"}))
    if report.split:
        blocks += [Heading("Split"), _key_values(report.split)]
    ordered = _ordered(report)
    evaluations = [e for _, e in ordered]
    blocks += [Heading("Detectors"), _comparison(evaluations), *_breakdowns(evaluations)]
    names = figure_names(report)
    for index, e in ordered:
        blocks += [Heading(f"{e.detector} ({e.risk}, {e.kind})"), _facts(e)]
        pair = names[index]
        if pair is not None:
            blocks.append(Figure(pair.reliability, f"{e.detector}: reliability diagram"))
            blocks.append(Figure(pair.histogram, f"{e.detector}: scores by label"))
        if e.top_latents:
            blocks += [Heading("Top latents", level=3), _latents(e)]
        if e.top_heads:
            blocks += [Heading("Top lookback heads", level=3), _heads(e)]
        if e.token_probes:
            blocks += [Heading("Token probes", level=3), _token_probes(e)]
        if e.examples:
            blocks += _examples(e)
    return blocks
