"""Grounding detector benchmark: ``python -m benchmarks.grounding.run --help``."""
