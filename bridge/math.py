"""Windowed math on cumulative samples: pure functions of arrays, no I/O, no clock.

Quantiles follow PromQL's ``histogram_quantile`` (Prometheus ``bucketQuantile``) exactly, so a
figure on the stream agrees with the same query in Grafana.
"""

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import cast

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
    return histogram_summary(qs, bounds, cumulative)[1]


def histogram_summary(qs: Sequence[float], bounds: np.ndarray, cumulative: np.ndarray) -> tuple[float, list[float]]:
    """``histogram_min`` and ``histogram_quantiles(qs, ...)`` of one series, from one monotonic pass.

    Buckets are a few dozen: past the one array pass, bisecting Python lists costs less than numpy's
    per-call dispatch (this runs for every histogram of every filter set of every stream tick)."""
    at: list[float] = np.maximum.accumulate(cumulative).tolist()  # PromQL forces monotonic counts
    upper: list[float] = bounds.tolist()
    n = len(upper)
    observations = at[-1] if at else 0.0
    if n < 2 or not math.isinf(upper[-1]) or observations == 0:
        return _minimum(upper, at), [_out_of_range(q, math.nan) for q in qs]
    results = []
    for q in qs:
        if math.isnan(q) or q < 0 or q > 1:
            results.append(_out_of_range(q, math.nan))
            continue
        rank = q * observations
        b = bisect_left(at, rank, 0, n - 1)  # the first bucket, +Inf excluded, whose count reaches the rank
        if b == n - 1:
            results.append(upper[-2])
        elif b == 0 and upper[0] <= 0:
            results.append(upper[0])
        else:
            start = 0.0 if b == 0 else upper[b - 1]
            below = at[b - 1] if b > 0 else 0.0
            count = at[b] - below
            results.append(math.nan if count == 0 else start + (upper[b] - start) * ((rank - below) / count))
    return _minimum(upper, at), results


def histogram_summaries(
    qs: Sequence[float], bounds: np.ndarray, cumulative: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``histogram_summary`` of many series with the same ``bounds`` at once: ``cumulative`` holds one
    series a row; returns the minimums (one per row) and the quantiles (a row per series, a column per
    q). Every figure is the one ``histogram_summary`` gives for that row, bit for bit: the same float
    operations in the same order, done by numpy across the rows.

    This is what lets a hundred filter sets whose windows share an end be computed together (see
    ``bridge.categories.WindowSet``)."""
    at = _monotonic(np.asarray(cumulative, dtype=float))
    rows, n = at.shape
    if rows == 0 or n < 2 or not math.isinf(bounds[-1]):
        quantiles = np.full((rows, len(qs)), math.nan)
        quantiles[:] = [_out_of_range(q, math.nan) for q in qs]
        return _minimums(np.broadcast_to(bounds, (rows, n)), at), quantiles
    return _summaries(qs, np.broadcast_to(bounds, (rows, n)), at)


def histogram_summaries_of_layouts(
    layouts: Sequence[tuple[Sequence[float], np.ndarray, np.ndarray]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``histogram_summaries(qs, bounds, rows)`` of each (qs, bounds, rows) of ``layouts``, bit for bit,
    with one pass of array work for all of them where that gives the same figures. Each layout asks for
    its own quantiles (a histogram read for its tail and another for its head need not both compute
    six).

    A layout narrower than the widest is padded on the left with empty buckets at bound 0: for a
    quantile in (0, 1] the rank is above 0, so it never falls in them, and the lowest real bucket keeps
    its lower edge 0. That holds for layouts whose first bound is above 0 and whose last is +Inf, with
    no count below 0 (the padding's zeros would lift it); any other layout (and any other q) is
    computed on its own."""
    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(layouts)
    together = []
    for index, (qs, bounds, rows) in enumerate(layouts):
        paddable = len(bounds) >= 2 and bounds[0] > 0 and math.isinf(bounds[-1])
        every_q_inside = bool(qs) and all(0 < q <= 1 for q in qs)
        if every_q_inside and paddable and (rows.size == 0 or rows.min() >= 0):
            together.append(index)
        else:
            results[index] = histogram_summaries(qs, bounds, rows)
    if together:
        width = max(len(layouts[index][1]) for index in together)
        most = max(len(layouts[index][0]) for index in together)
        sizes = [len(layouts[index][2]) for index in together]
        padded_bounds = np.zeros((sum(sizes), width))
        padded = np.zeros((sum(sizes), width))
        wanted = np.zeros((sum(sizes), most))
        first = 0
        for index, size in zip(together, sizes, strict=True):
            qs, bounds, rows = layouts[index]
            padded_bounds[first : first + size, width - len(bounds) :] = bounds
            padded[first : first + size, width - len(bounds) :] = rows
            wanted[first : first + size] = [*qs, *[qs[-1]] * (most - len(qs))]  # the repeats are not returned
            first += size
        minimums, quantiles = padded_summaries(wanted, padded_bounds, padded)
        first = 0
        for index, size in zip(together, sizes, strict=True):
            results[index] = (minimums[first : first + size], quantiles[first : first + size, : len(layouts[index][0])])
            first += size
    return cast(list[tuple[np.ndarray, np.ndarray]], results)


def padded_summaries(wanted: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one pass of ``histogram_summaries_of_layouts`` over layouts already padded to one width: rows of
    cumulative ``counts`` (none below 0), each at its row of ``bounds`` (the first above 0 but for the
    padding's, the last +Inf) with its row of quantiles ``wanted`` (each in (0, 1]). Returns the minimums
    (one per row) and the quantiles (a row per row of counts, a column per q)."""
    at = _monotonic(counts)
    return _minimums(bounds, at), _quantiles(wanted, bounds, at)


def _summaries(qs: Sequence[float], bounds: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``histogram_summaries`` of rows of monotonic counts ``at`` at rows of ``bounds`` (at least two,
    the last +Inf), each row its own bounds."""
    rows = len(at)
    quantiles = np.full((rows, len(qs)), math.nan)
    minimums = _minimums(bounds, at)
    valid = [column for column, q in enumerate(qs) if not (math.isnan(q) or q < 0 or q > 1)]
    for column, q in enumerate(qs):
        if column not in valid:
            quantiles[:, column] = _out_of_range(q, math.nan)
    if valid:
        wanted = np.broadcast_to(np.array([qs[column] for column in valid]), (rows, len(valid)))
        quantiles[:, valid] = _quantiles(wanted, bounds, at)
    return minimums, quantiles


def _quantiles(wanted: np.ndarray, bounds: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The quantiles ``wanted`` (a row of qs in [0, 1] per row of counts) of rows of monotonic counts
    ``at`` at rows of ``bounds`` (at least two, the last +Inf): a row per series, a column per q, every
    step one array operation for all of them."""
    rows, n = at.shape
    observations = at[:, -1]
    rank = observations[:, None] * wanted
    # bisect_left over the buckets but +Inf: the first that reaches the rank, else the +Inf bucket. In
    # counts that never fall, that is the number of buckets below the rank: one reduction, not two.
    b = np.count_nonzero(at[:, None, : n - 1] < rank[:, :, None], axis=2)
    # Each row's bucket b and b - 1, read from the flattened rows (what take_along_axis does, without its
    # overhead, which a hundred windows' histograms pay five times a tick).
    row_starts = (np.arange(rows) * n)[:, None]
    flat_bounds, flat_at = bounds.ravel(), at.ravel()
    at_b, previous = row_starts + b, row_starts + np.maximum(b - 1, 0)
    start = np.where(b == 0, 0.0, flat_bounds[previous])
    below = np.where(b > 0, flat_at[previous], 0.0)
    count = flat_at[at_b] - below
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = start + (flat_bounds[at_b] - start) * ((rank - below) / count)
    value = np.where(count == 0, math.nan, inside)
    value = np.where((b == 0) & (bounds[:, :1] <= 0), bounds[:, :1], value)
    value = np.where(b == n - 1, bounds[:, -2:-1], value)
    return np.where((observations != 0)[:, None], value, math.nan)


def _minimums(bounds: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``_minimum`` of each row of monotonic counts ``at``, each at its row of ``bounds``."""
    rows, n = at.shape
    if rows == 0 or n == 0:
        return np.full(rows, math.nan)
    b = (at > 0).argmax(axis=1)  # bisect_right(at, 0.0): the first bucket holding an observation
    lower = np.where(b == 0, 0.0, bounds.ravel()[np.arange(rows) * n + np.maximum(b - 1, 0)])
    last = bounds[:, -2] if n > 1 else math.nan
    value = np.where(b == n - 1, last, lower)
    return np.where(at[:, -1] > 0, value, math.nan)


def _monotonic(rows: np.ndarray) -> np.ndarray:
    """Each row's running maximum, as PromQL mends a histogram whose cumulative counts dip (summing
    series scraped at slightly different moments can). Counts that never dip (nearly always) are
    their own running maximum: returned as they are, for a quarter of the cost."""
    if rows.shape[1] < 2 or (rows[:, 1:] >= rows[:, :-1]).all():
        return rows
    return np.maximum.accumulate(rows, axis=1)


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
    return _minimum(bounds.tolist(), np.maximum.accumulate(cumulative).tolist())


def _minimum(upper: list[float], at: list[float]) -> float:
    """``histogram_min`` of monotonic counts ``at`` at bounds ``upper``."""
    if not at or at[-1] <= 0:
        return math.nan
    b = bisect_right(at, 0.0)  # the first bucket holding an observation
    if b == len(upper) - 1:
        return upper[-2] if len(upper) > 1 else math.nan
    return 0.0 if b == 0 else upper[b - 1]


def mean(total: float, count: float) -> float:
    return total / count if count > 0 else math.nan
