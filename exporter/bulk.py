"""Hot-path updates of prometheus-client children, and the weighted observation its API lacks.

An engine step gives every request of a batch one token with the same inter-token gap, so a step
records ``count`` identical observations at once. These helpers update a labelled child through
prometheus-client's own value objects, exactly as ``inc`` and ``observe`` would, minus the per-call
checks that a child resolved once at start-up cannot fail.

In-process values (``MutexValue``) are updated without their lock: every write happens on the event
loop's thread (the engine, the routes and the HTTP middleware all run there), and under the GIL a
reader on another thread still sees a whole float. That cuts a request's metric updates by about
three quarters. Multiprocess values keep their own locking (``.inc``). ``tests/exporter/test_bulk.py``
holds every helper to the public API's results, so a prometheus-client upgrade that changes these
internals fails CI instead of skewing numbers.
"""

from bisect import bisect_left
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Summary
from prometheus_client.values import MutexValue


def _add(value: Any, amount: float) -> None:
    """``value`` is a child's private value holder: ``MutexValue`` in one process, or a multiprocess one."""
    if value.__class__ is MutexValue:
        value._value += amount
    else:
        value.inc(amount)


# The helpers below inline ``_add`` for the in-process case: a dozen histogram observations per request
# made the two calls per observation a measurable share of a request's CPU.


def inc(child: Counter | Gauge, amount: float = 1.0) -> None:
    """``child.inc(amount)`` for a non-negative amount."""
    value = child._value
    if value.__class__ is MutexValue:
        value._value += amount
    else:
        value.inc(amount)


def observe(child: Histogram, amount: float) -> None:
    """``child.observe(amount)``."""
    total, bucket = child._sum, child._buckets[bisect_left(child._upper_bounds, amount)]
    if total.__class__ is MutexValue:
        total._value += amount
        bucket._value += 1.0
    else:
        total.inc(amount)
        bucket.inc(1.0)


def observe_many(child: Histogram, amount: float, count: int) -> None:
    """Record ``count`` observations of ``amount`` on a labelled histogram child."""
    if count <= 0:
        return
    _add(child._sum, amount * count)
    _add(child._buckets[bisect_left(child._upper_bounds, amount)], float(count))


def observe_summary(child: Summary, amount: float) -> None:
    """``child.observe(amount)`` for a summary (a count and a sum, no quantiles)."""
    count, total = child._count, child._sum
    if count.__class__ is MutexValue:
        count._value += 1.0
        total._value += amount
    else:
        count.inc(1.0)
        total.inc(amount)
