"""Detectors: probe detectors (fabrication, sycophancy, deception) and the grounding detector.

The grounding detector's names are exported lazily, so ``import detectors`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_GROUNDING = ("GroundingConfig", "GroundingDetector", "GroundingResult", "FEATURE_NAMES")

__all__ = ["FEATURE_NAMES", "GroundingConfig", "GroundingDetector", "GroundingResult"]


def __getattr__(name: str) -> Any:
    if name in _GROUNDING:
        from detectors import grounding

        return getattr(grounding, name)
    msg = f"module 'detectors' has no attribute {name!r}"
    raise AttributeError(msg)
