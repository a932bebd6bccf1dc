"""Comparing two snapshots of the same series, read by two paths (a source's own and ``take`` of the
families ``collect()`` gives)."""

import numpy as np

from bridge.snapshot import Snapshot


def assert_same_snapshot(direct: Snapshot, collected: Snapshot) -> None:
    """The same values, and the same histogram series with the same bounds, counts, sums and totals."""
    assert direct.values == collected.values
    assert direct.histograms.keys() == collected.histograms.keys()
    for name, series in collected.histograms.items():
        assert direct.histograms[name].keys() == series.keys(), name
        expected = {key: parts for key, *parts in collected.histogram_series(name)}
        for key, bounds, cumulative, total, count in direct.histogram_series(name):
            np.testing.assert_array_equal(bounds, expected[key][0])
            np.testing.assert_array_equal(cumulative, expected[key][1])
            assert (total, count) == (expected[key][2], expected[key][3])
