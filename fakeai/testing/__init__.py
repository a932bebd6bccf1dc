"""Helpers for tests that drive a real fakeai server (ours and our users'); the pytest plugin is
``fakeai.testing.plugin``."""

from bridge.reader import HistogramValue, MetricsSnapshot, scrape
from fakeai.testing.metrics import Delta, Metrics
from fakeai.testing.process import ServerProcess

__all__ = ["Delta", "HistogramValue", "Metrics", "MetricsSnapshot", "ServerProcess", "scrape"]
