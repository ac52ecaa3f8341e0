"""Sycophancy and deception detectors with the real reader: sets, extraction, probes, baselines.

The entry point is :mod:`benchmarks.detect_behaviours`; these modules hold its parts.
"""
