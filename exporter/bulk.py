"""Hot-path updates of prometheus-client children, and the weighted observation its API lacks.

An engine step gives every request of a batch one token with the same inter-token gap, so a step
records ``count`` identical observations at once. These helpers update a labelled child through
prometheus-client's own value objects (in-process and multiprocess alike), exactly as ``inc`` and
``observe`` would, minus the per-call checks that a child resolved once at start-up cannot fail;
``tests/exporter/test_bulk.py`` holds them to that, so an upgrade that changes the internals fails CI
instead of skewing numbers.
"""

from bisect import bisect_left

from prometheus_client import Counter, Gauge, Histogram


def inc(child: Counter | Gauge, amount: float = 1.0) -> None:
    """``child.inc(amount)`` for a non-negative amount, without its per-call checks."""
    child._value.inc(amount)


def observe(child: Histogram, amount: float) -> None:
    """``child.observe(amount)`` without its per-call checks, for the per-token hot path."""
    child._sum.inc(amount)
    child._buckets[bisect_left(child._upper_bounds, amount)].inc(1)


def observe_many(child: Histogram, amount: float, count: int) -> None:
    """Record ``count`` observations of ``amount`` on a labelled histogram child."""
    if count <= 0:
        return
    bounds = child._upper_bounds
    child._sum.inc(amount * count)
    child._buckets[bisect_left(bounds, amount)].inc(count)
