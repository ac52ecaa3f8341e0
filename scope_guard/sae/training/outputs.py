"""What a training run leaves behind: the SAE in two formats, a manifest and a report.

Layout of the output folder::

    params.safetensors + config.json   Gemma Scope 2 format (``load_sae(folder)`` reads it)
    saelens/cfg.json + sae_weights.safetensors   SAELens format
    manifest.json                      what produced it (reader, site, corpus, config, versions)
    report.json + report.md            held-out FVU, L0, dead latents, delta-CE, training curve
    explanations.json                  top-activating contexts per latent
    checkpoint/                        the resumable training state
"""

from __future__ import annotations

import hashlib
import logging
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from scope_guard._version import __version__
from scope_guard.sae.jumprelu import JumpReLUSAE
from scope_guard.sae.training.evaluation import EvaluationResult
from scope_guard.sae.training.explain import EXPLANATIONS_FILE
from scope_guard.sae.training.trainer import TrainingResult
from scope_guard.sae.writers import save_gemma_scope_2, save_saelens

__all__ = [
    "MANIFEST_FILE",
    "REPORT_FILE",
    "SAELENS_SUBFOLDER",
    "TrainingManifest",
    "TrainingReport",
    "write_sae_folder",
]

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
REPORT_MD = "report.md"
SAELENS_SUBFOLDER = "saelens"


class TrainingManifest(BaseModel):
    """What produced a trained SAE: enough to reproduce it, and to refuse it for another reader."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "scope-guard-trained-sae"
    created_at: str
    scope_guard_version: str
    versions: dict[str, str]
    reader: dict[str, Any]
    site: str
    d_model: int
    width: int
    data: dict[str, Any]
    heldout: dict[str, Any]
    tokens_trained: int
    steps: int
    stopped_by: str
    passes: int
    seed: int
    input_scale: float
    config: dict[str, Any]
    wall_s: float
    files: dict[str, str]


class TrainingReport(BaseModel):
    """The quality figures of a trained SAE, on held-out text, and its training curve."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: str
    width: int
    tokens_trained: int
    fvu: float
    mean_l0: float
    dead_fraction: float
    dead_fraction_training: float
    n_eval_tokens: int
    ce_clean: float | None
    ce_spliced: float | None
    ce_zero_ablated: float | None
    delta_ce: float | None
    loss_recovered: float | None
    n_resampled: int
    wall_s: float
    tokens_per_s: float
    curve: list[dict[str, float]]

    def markdown(self) -> str:
        """The report as a short Markdown page."""

        def fmt(value: float | None, spec: str = ".4f") -> str:
            return "n/a" if value is None else format(value, spec)

        lines = [
            f"# JumpReLU SAE at {self.site}, width {self.width}",
            "",
            "| figure (held-out) | value |",
            "|---|---|",
            f"| FVU | {fmt(self.fvu)} |",
            f"| mean L0 | {fmt(self.mean_l0, '.1f')} |",
            f"| dead latents (silent on held-out) | {fmt(100 * self.dead_fraction, '.1f')}% |",
            f"| dead (training counter) | {fmt(100 * self.dead_fraction_training, '.1f')}% |",
            f"| delta-CE (nats/token) | {fmt(self.delta_ce)} |",
            f"| CE clean / spliced / zero-ablated | {fmt(self.ce_clean)} / {fmt(self.ce_spliced)}"
            f" / {fmt(self.ce_zero_ablated)} |",
            f"| loss recovered | {fmt(self.loss_recovered)} |",
            f"| held-out tokens | {self.n_eval_tokens} |",
            f"| training tokens | {self.tokens_trained} ({fmt(self.tokens_per_s, '.0f')} tok/s) |",
            f"| wall time | {fmt(self.wall_s, '.0f')} s |",
            f"| latents resampled | {self.n_resampled} |",
            "",
            "## Training curve (training batches)",
            "",
            "| tokens | FVU | L0 | lambda | dead |",
            "|---|---|---|---|---|",
        ]
        step = max(1, len(self.curve) // 20)
        shown = self.curve[::step]
        if self.curve and shown[-1] is not self.curve[-1]:
            shown.append(self.curve[-1])
        for p in shown:
            lines.append(
                f"| {int(p['tokens'])} | {p['fvu']:.4f} | {p['l0']:.1f} | "
                f"{p['l0_coefficient']:.4g} | {100 * p['dead_fraction']:.1f}% |"
            )
        return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions of what computed the SAE."""
    import torch
    import transformers

    return {
        "scope_guard": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def build_report(
    result: TrainingResult, evaluation: EvaluationResult, dead_training: float
) -> TrainingReport:
    """The report of a finished run."""
    ce = evaluation.cross_entropy
    site = result.sae.info.site
    return TrainingReport(
        site=str(site) if site is not None else "unknown",
        width=result.sae.info.d_sae,
        tokens_trained=result.tokens,
        fvu=evaluation.fvu,
        mean_l0=evaluation.mean_l0,
        dead_fraction=evaluation.dead_fraction,
        dead_fraction_training=dead_training,
        n_eval_tokens=evaluation.n_tokens,
        ce_clean=ce.clean if ce else None,
        ce_spliced=ce.spliced if ce else None,
        ce_zero_ablated=ce.zero_ablated if ce else None,
        delta_ce=ce.delta if ce else None,
        loss_recovered=ce.loss_recovered if ce else None,
        n_resampled=result.n_resampled,
        wall_s=result.wall_s,
        tokens_per_s=result.tokens / max(result.wall_s, 1e-9),
        curve=[{k: float(v) for k, v in p._asdict().items()} for p in result.curve],
    )


def write_sae_folder(
    folder: str | Path,
    sae: JumpReLUSAE,
    *,
    l0: float,
    manifest: dict[str, Any],
    report: TrainingReport,
) -> TrainingManifest:
    """Write the SAE (both formats), the manifest and the report into ``folder``.

    Args:
        folder: The output folder (created if needed).
        sae: The trained SAE (raw-activation units).
        l0: Mean L0 to record in the Gemma Scope 2 config.
        manifest: The manifest's fields except ``created_at``, versions and ``files``.
        report: The quality report.
    """
    out = Path(folder)
    # The top contexts of an earlier SAE in this folder describe other latents: gone before the
    # new weights land (the run writes its own afterwards when it scans).
    (out / EXPLANATIONS_FILE).unlink(missing_ok=True)
    save_gemma_scope_2(sae, out, l0=l0)
    save_saelens(sae, out / SAELENS_SUBFOLDER)
    files = {
        name: _sha256(out / name)
        for name in (
            "params.safetensors",
            "config.json",
            f"{SAELENS_SUBFOLDER}/cfg.json",
            f"{SAELENS_SUBFOLDER}/sae_weights.safetensors",
        )
    }
    full = TrainingManifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        scope_guard_version=__version__,
        versions=versions(),
        files=files,
        **manifest,
    )
    (out / MANIFEST_FILE).write_text(full.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / REPORT_FILE).write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / REPORT_MD).write_text(report.markdown(), encoding="utf-8")
    logger.info("trained SAE written to %s", out)
    return full
