"""Markdown tables of the behaviour benchmark's results (for ``benchmarks/README.md``)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["render"]

_HEAD = "| probe | AUROC [95% CI] | F1 | ECE | TPR @ 1% FPR |\n|---|---|---|---|---|\n"

_FAMILY_TITLES = {
    "all": "**selected: all candidates**",
    "raw": "selected: raw only",
    "raw_at_sae_site": "selected: raw at the SAE's site",
    "sae": "selected: SAE only",
}


def _row(name: str, f: dict[str, Any]) -> str:
    lo, hi = f["auroc_ci"]
    return (
        f"| {name} | {f['auroc']:.3f} [{lo:.3f}, {hi:.3f}] | {f['f1']:.3f} | {f['ece']:.3f} "
        f"| {f['tpr_at_1_fpr']:.3f} |\n"
    )


def _picks(per_fold: list[str]) -> str:
    """``a x3, b x2``: the per-fold choices, most frequent first."""
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in Counter(per_fold).most_common())


def _set_table(r: dict[str, Any]) -> str:
    sub = r.get("subsample", {})
    kept = sub.get("kept") or sub.get("units_drawn") or sub.get("units_total")
    text = (
        f"**{r['set']}** ({r['risk']}; {r['n_examples']} examples in {r['n_groups']} groups, "
        f"{r['positive_rate']:.0%} positive; {kept} of {sub.get('units_total')} units)\n\n"
    )
    text += _HEAD
    for family, title in _FAMILY_TITLES.items():
        if family in r["selected"]:
            sel = r["selected"][family]
            text += _row(f"{title} (nested: {_picks(sel['per_fold'])})", sel)
    cal = r.get("calibrate")
    if cal:
        text += _row(f"**calibrate** cv, raw {cal['site']} mean_max, L2, C {cal['C']}", cal)
    for name, f in r["sweep"].items():
        text += _row(f"ridge {name}", f)
    n_latents = r.get("sae_probe", {}).get("n_latents")
    for name, f in r.get("sae_sweep", {}).items():
        text += _row(f"ridge SAE {name.removeprefix('sae:')} ({n_latents} latents)", f)
    for name, f in r.get("sae_parts", {}).items():
        part, rest = name.split(":", 1)
        text += _row(f"diagnostic: ridge on the SAE's {part.removeprefix('sae-')} {rest}", f)
    for name, f in r["baselines"].items():
        text += _row(f"baseline: {name}", f)
    return text + "\n"


def _gap_table(results: list[dict[str, Any]]) -> str:
    """Per set: the SAE's selection beside the raw one at its site, and per pooling."""
    rows = [r for r in results if r.get("sae_probe")]
    if not rows:
        return ""
    poolings = list(rows[0]["sae_probe"]["per_pooling"])
    text = "**SAE against raw at the SAE's site** (AUROC; gap = raw - SAE)\n\n"
    text += "| set | SAE selected | raw selected (same site) | gap raw - SAE |"
    text += "".join(f" gap {p} |" for p in poolings) + "\n"
    text += "|---|---|---|---|" + "---|" * len(poolings) + "\n"
    for r in rows:
        s = r["sae_probe"]
        gaps = "".join(f" {s['per_pooling'][p]['gap_raw_minus_sae']:+.3f} |" for p in poolings)
        text += (
            f"| {r['set']} | {s['selected_auroc']:.3f} | {s['raw_selected_auroc_same_site']:.3f} "
            f"| {s['gap_raw_minus_sae']:+.3f} |{gaps}\n"
        )
    return text + "\n" + _parts_table(rows)


def _parts_table(rows: list[dict[str, Any]]) -> str:
    """Where a gap comes from: raw, codes, reconstruction and error probes, one pooling each."""
    first = rows[0]["sae_probe"]["per_pooling"]
    poolings = [p for p in first if "error_auroc" in first[p]]
    if not poolings:
        return ""
    text = "**Where a gap is**: ridge probes on the raw activations, the SAE's codes, its "
    text += "reconstruction and its error (AUROC)\n\n"
    text += "| set | pooling | raw | SAE codes | SAE reconstruction | SAE error |\n"
    text += "|---|---|---|---|---|---|\n"
    for r in rows:
        for p in poolings:
            f = r["sae_probe"]["per_pooling"][p]
            text += (
                f"| {r['set']} | {p} | {f['raw_auroc']:.3f} | {f['sae_auroc']:.3f} "
                f"| {f['reconstruction_auroc']:.3f} | {f['error_auroc']:.3f} |\n"
            )
    return text + "\n"


def _curve_table(results: list[dict[str, Any]]) -> str:
    """The families' AUROC on the smaller prefixes and on the whole subsample."""
    rows = [r for r in results if r.get("learning_curve")]
    if not rows:
        return ""
    families = [f for f in _FAMILY_TITLES if f in rows[0]["selected"]]
    text = "**Learning curve**: each family's nested selection on prefixes of the subsample\n\n"
    text += "| set | units | examples |" + "".join(f" {f} |" for f in families) + "\n"
    text += "|---|---|---|" + "---|" * len(families) + "\n"
    for r in rows:
        sub = r.get("subsample", {})
        whole = {
            "units": sub.get("kept") or sub.get("units_drawn"),
            "n_examples": r["n_examples"],
            "selected": r["selected"],
        }
        for point in [*r["learning_curve"], whole]:
            cells = "".join(
                f" {point['selected'][f]['auroc']:.3f} |" if f in point["selected"] else " - |"
                for f in families
            )
            text += f"| {r['set']} | {point['units']} | {point['n_examples']} |{cells}\n"
    return text + "\n"


def _transfer_table(t: dict[str, Any]) -> str:
    text = "**Transfer**: each deception set's `calibrate` bundle scored on the others\n\n"
    text += "| fitted on | scored on | AUROC [95% CI] | F1 | ECE | TPR @ 1% FPR |\n"
    text += "|---|---|---|---|---|---|\n"
    for p in t["transfer"]:
        lo, hi = p["auroc_ci"]
        text += (
            f"| {p['fitted_on']} | {p['scored_on']} | {p['auroc']:.3f} [{lo:.3f}, {hi:.3f}] "
            f"| {p['f1']:.3f} | {p['ece']:.3f} | {p['tpr_at_1_fpr']:.3f} |\n"
        )
    return text


def render(results: Path, names: list[str]) -> str:
    """The tables of every set in ``names`` found in ``results``: per set, then the SAE gaps,
    the learning curves and the transfer table."""
    found = []
    for name in names:
        path = results / f"behaviours_{name}.json"
        if path.is_file():
            found.append(json.loads(path.read_text(encoding="utf-8")))
    out = "".join(_set_table(r) for r in found)
    out += _gap_table(found) + _curve_table(found)
    transfer = results / "behaviours_transfer.json"
    if transfer.is_file():
        out += _transfer_table(json.loads(transfer.read_text(encoding="utf-8")))
    return out
