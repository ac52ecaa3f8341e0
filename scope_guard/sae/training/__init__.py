"""Train your own JumpReLU SAE (the Gemma Scope recipe) on any reader's activations, on a CPU.

- :class:`TrainingConfig`: hyperparameters and budgets.
- :class:`TextCorpus`: documents from text files, JSONL fields, documents or labeled exchanges.
- :class:`ReaderActivations` / :class:`TensorActivations`: the activation stream.
- :class:`Trainer`: the loop, with checkpoints and resume.
- :func:`train_sae`: reader + corpus -> an SAE folder (Gemma Scope 2 and SAELens formats,
  manifest, report with held-out FVU / L0 / dead latents / delta-CE, top-activating contexts).
- :func:`load_explanations`: the top-activating contexts saved beside a trained SAE.
"""

from scope_guard.sae.training.config import TrainingConfig
from scope_guard.sae.training.corpus import TextCorpus
from scope_guard.sae.training.evaluation import (
    CrossEntropy,
    EvaluationResult,
    delta_cross_entropy,
    evaluate_sae,
    load_causal_lm,
)
from scope_guard.sae.training.explain import LatentContext, load_explanations, top_contexts
from scope_guard.sae.training.model import TrainableJumpReLU
from scope_guard.sae.training.outputs import TrainingManifest, TrainingReport
from scope_guard.sae.training.pipeline import TrainedSAE, train_sae
from scope_guard.sae.training.stream import ReaderActivations, TensorActivations
from scope_guard.sae.training.trainer import CurvePoint, Trainer, TrainingResult

__all__ = [
    "CrossEntropy",
    "CurvePoint",
    "EvaluationResult",
    "LatentContext",
    "ReaderActivations",
    "TensorActivations",
    "TextCorpus",
    "TrainableJumpReLU",
    "TrainedSAE",
    "Trainer",
    "TrainingConfig",
    "TrainingManifest",
    "TrainingReport",
    "TrainingResult",
    "delta_cross_entropy",
    "evaluate_sae",
    "load_causal_lm",
    "load_explanations",
    "top_contexts",
    "train_sae",
]
