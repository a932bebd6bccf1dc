"""An independent, loop-by-loop transcription of Prometheus's bucketQuantile, for checking ours."""

import math

INF = math.inf


def promql_reference(q: float, bounds: list[float], cumulative: list[float]) -> float:
    """Prometheus's bucketQuantile, transcribed loop by loop from its Go source."""
    if q < 0:
        return -INF
    if q > 1:
        return INF
    if len(bounds) < 2 or bounds[-1] != INF:
        return math.nan
    counts = list(cumulative)
    for i in range(1, len(counts)):  # ensureMonotonic
        counts[i] = max(counts[i], counts[i - 1])
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = len(counts) - 1
    for i in range(len(counts) - 1):  # sort.Search over all buckets but +Inf
        if counts[i] >= rank:
            b = i
            break
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    bucket_start, bucket_end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        bucket_start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:
        return math.nan
    return bucket_start + (bucket_end - bucket_start) * (rank / count)
