"""Metrics, report tables and plots."""
