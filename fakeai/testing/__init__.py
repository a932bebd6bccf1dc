"""Helpers for tests that drive a real fakeai server (ours and our users'); the pytest plugin is
``fakeai.testing.plugin``."""

from fakeai.testing.metrics import Delta, HistogramValue, Metrics, MetricsSnapshot, scrape
from fakeai.testing.process import ServerProcess

__all__ = ["Delta", "HistogramValue", "Metrics", "MetricsSnapshot", "ServerProcess", "scrape"]
