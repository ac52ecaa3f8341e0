"""Calibration: labeled data, feature extraction, probe fitting, calibration, metrics, reports."""
