"""Helpers for tests that drive a real fakeai server (ours and our users')."""

from fakeai.testing.metrics import MetricsSnapshot, scrape
from fakeai.testing.process import ServerProcess

__all__ = ["MetricsSnapshot", "ServerProcess", "scrape"]
