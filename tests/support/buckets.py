"""Where a client's latency quantile falls against the server's histogram of the same requests."""

from bridge.reader import HistogramValue


def bucket_of(histogram: HistogramValue, q: float) -> tuple[float, float]:
    """The (lower, upper] bucket holding the q-quantile's rank, as histogram_quantile finds it."""
    rank = q * histogram.count
    lower = 0.0
    for upper, cumulative in histogram.buckets.items():
        if cumulative >= rank:
            return lower, upper
        lower = upper
    raise AssertionError("rank beyond the +Inf bucket")


def within(value: float, bucket: tuple[float, float]) -> bool:
    """In the bucket, or within max(2 ms, 5%) of one of its bounds (the neighbouring bucket agrees too)."""
    lower, upper = bucket
    return lower - max(0.002, 0.05 * lower) < value <= upper + max(0.002, 0.05 * upper)
