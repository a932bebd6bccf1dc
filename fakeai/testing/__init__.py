"""Helpers for tests that drive a real fakeai server (ours and our users'); the pytest plugin is
``fakeai.testing.plugin``."""

from bridge.reader import HistogramValue, MetricsSnapshot, scrape
from fakeai.server_process import ServerProcess
from fakeai.testing.metrics import Delta, Metrics

__all__ = ["Delta", "HistogramValue", "Metrics", "MetricsSnapshot", "ServerProcess", "scrape"]
