"""Windowed math on cumulative samples: pure functions of arrays, no I/O, no clock.

Quantiles follow PromQL's ``histogram_quantile`` (Prometheus ``bucketQuantile``) exactly, so a
figure on the stream agrees with the same query in Grafana.
"""

import math

import numpy as np


def increase(start: float, end: float) -> float:
    """Counter increase between two samples; a lower end means the counter restarted from zero."""
    return end - start if end >= start else end


def rate(start: float, end: float, seconds: float) -> float:
    return increase(start, end) / seconds if seconds > 0 else 0.0


def bucket_increase(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per-bucket increase of cumulative histogram counts; any bucket going down means a restart."""
    if start.shape != end.shape:
        return end.copy()
    increase: np.ndarray = end - start
    # ``ndarray.min`` rather than ``np.any(end < start)``: one array operation instead of two plus numpy's
    # Python-level dispatch, on a path taken for every series of every filter set every tick.
    return end.copy() if increase.size and increase.min() < 0 else increase


def histogram_quantile(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> float:
    """PromQL's ``histogram_quantile(q, ...)`` for one series.

    ``bounds`` are the upper bounds, ascending, the last one +Inf; ``cumulative`` the counts at them.
    Returns NaN where PromQL does (no observations, fewer than two buckets, no +Inf bucket).
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    n = len(bounds)
    if n < 2 or not math.isinf(bounds[-1]):
        return math.nan
    counts = np.maximum.accumulate(cumulative)  # PromQL forces monotonic counts
    observations = float(counts[-1])
    if observations == 0:
        return math.nan
    rank = q * observations
    # First bucket, +Inf excluded, whose cumulative count reaches the rank.
    b = int(np.searchsorted(counts[:-1], rank, side="left"))
    if b == n - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start = 0.0 if b == 0 else float(bounds[b - 1])
    count = float(counts[b]) - (float(counts[b - 1]) if b > 0 else 0.0)
    rank -= float(counts[b - 1]) if b > 0 else 0.0
    if count == 0:
        return math.nan
    return start + (float(bounds[b]) - start) * (rank / count)


def histogram_min(bounds: np.ndarray, cumulative: np.ndarray) -> float:
    """Lower edge of the lowest non-empty bucket: PromQL's ``histogram_quantile(0, ...)`` where that
    is defined (PromQL gives NaN when the first bucket is empty, which a JSON number cannot carry)."""
    counts = np.maximum.accumulate(cumulative)
    if len(counts) == 0 or counts[-1] == 0:
        return math.nan
    b = int(np.argmax(counts > 0))
    if b == len(bounds) - 1:
        return float(bounds[-2]) if len(bounds) > 1 else math.nan
    return 0.0 if b == 0 else float(bounds[b - 1])


def mean(total: float, count: float) -> float:
    return total / count if count > 0 else math.nan
