"""Windowed math on cumulative samples: pure functions of arrays, no I/O, no clock.

Quantiles follow PromQL's ``histogram_quantile`` (Prometheus ``bucketQuantile``) exactly, so a
figure on the stream agrees with the same query in Grafana.
"""

import math
from collections.abc import Sequence

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
    return histogram_quantiles((q,), bounds, cumulative)[0]


def histogram_quantiles(qs: Sequence[float], bounds: np.ndarray, cumulative: np.ndarray) -> list[float]:
    """``histogram_quantile`` for several ``qs`` of one series, with one pass of array work for all."""
    n = len(bounds)
    if n < 2 or not math.isinf(bounds[-1]):
        return [_out_of_range(q, math.nan) for q in qs]
    counts = np.maximum.accumulate(cumulative)  # PromQL forces monotonic counts
    observations = float(counts[-1])
    if observations == 0:
        return [_out_of_range(q, math.nan) for q in qs]
    ranks = [q * observations for q in qs]
    # First bucket, +Inf excluded, whose cumulative count reaches each rank (NaN ranks are answered below).
    found = np.searchsorted(counts[:-1], [0.0 if math.isnan(r) else r for r in ranks], side="left").tolist()
    at: list[float] = counts.tolist()
    upper: list[float] = bounds.tolist()
    results = []
    for q, rank, b in zip(qs, ranks, found, strict=True):
        if math.isnan(q) or q < 0 or q > 1:
            results.append(_out_of_range(q, math.nan))
        elif b == n - 1:
            results.append(upper[-2])
        elif b == 0 and upper[0] <= 0:
            results.append(upper[0])
        else:
            start = 0.0 if b == 0 else upper[b - 1]
            below = at[b - 1] if b > 0 else 0.0
            count = at[b] - below
            results.append(math.nan if count == 0 else start + (upper[b] - start) * ((rank - below) / count))
    return results


def _out_of_range(q: float, otherwise: float) -> float:
    """PromQL's answers for a quantile outside [0, 1] (and NaN), whatever the buckets hold."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    return otherwise


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
