"""Detectors: probe detectors (fabrication, sycophancy, deception) and the grounding detector."""
