"""Calibrate judges against people: golden sets, one run per candidate judge, metrics, calibration report."""
