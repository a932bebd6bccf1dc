"""Metric definitions and exposition: the only package that knows metric names."""

from exporter.metrics import ServerMetrics

__all__ = ["ServerMetrics"]
