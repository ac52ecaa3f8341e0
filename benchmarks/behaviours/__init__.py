"""Sycophancy and deception detectors with the real reader: sets, extraction, candidates, probes,
baselines, tables.

The entry point is :mod:`benchmarks.detect_behaviours`; these modules hold its parts.
"""
