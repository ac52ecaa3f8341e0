"""Markdown tables of the behaviour benchmark's results (for ``benchmarks/README.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["render"]

_HEAD = "| probe | AUROC [95% CI] | F1 | ECE | TPR @ 1% FPR |\n|---|---|---|---|---|\n"


def _row(name: str, f: dict[str, Any]) -> str:
    lo, hi = f["auroc_ci"]
    return (
        f"| {name} | {f['auroc']:.3f} [{lo:.3f}, {hi:.3f}] | {f['f1']:.3f} | {f['ece']:.3f} "
        f"| {f['tpr_at_1_fpr']:.3f} |\n"
    )


def _set_table(r: dict[str, Any]) -> str:
    sub = r.get("subsample", {})
    kept = sub.get("kept") or sub.get("units_drawn") or sub.get("units_total")
    text = (
        f"**{r['set']}** ({r['risk']}; {r['n_examples']} examples in {r['n_groups']} groups, "
        f"{r['positive_rate']:.0%} positive; {kept} of {sub.get('units_total')} units)\n\n"
    )
    text += _HEAD
    sel = r["selected"]
    per_fold = ", ".join(sel["per_fold"])
    text += _row(f"**selected per fold** (nested: {per_fold})", sel)
    cal = r.get("calibrate")
    if cal:
        text += _row(f"**calibrate** cv, raw {cal['site']} mean_max, L2, C {cal['C']}", cal)
    for name, f in r["sweep"].items():
        text += _row(f"ridge {name}", f)
    if r.get("sae_probe"):
        s = r["sae_probe"]
        text += _row(f"SAE {s['site']} ({s['n_latents']} latents, mean)", s)
    for name, f in r["baselines"].items():
        text += _row(f"baseline: {name}", f)
    return text + "\n"


def _transfer_table(t: dict[str, Any]) -> str:
    text = "| fitted on | scored on | AUROC [95% CI] | F1 | ECE | TPR @ 1% FPR |\n"
    text += "|---|---|---|---|---|---|\n"
    for p in t["transfer"]:
        lo, hi = p["auroc_ci"]
        text += (
            f"| {p['fitted_on']} | {p['scored_on']} | {p['auroc']:.3f} [{lo:.3f}, {hi:.3f}] "
            f"| {p['f1']:.3f} | {p['ece']:.3f} | {p['tpr_at_1_fpr']:.3f} |\n"
        )
    return text


def render(results: Path, names: list[str]) -> str:
    """The tables of every set in ``names`` found in ``results``, then the transfer table."""
    out = ""
    for name in names:
        path = results / f"behaviours_{name}.json"
        if path.is_file():
            out += _set_table(json.loads(path.read_text(encoding="utf-8")))
    transfer = results / "behaviours_transfer.json"
    if transfer.is_file():
        out += _transfer_table(json.loads(transfer.read_text(encoding="utf-8")))
    return out
