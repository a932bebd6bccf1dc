"""The bridge's math against known vectors and, property-based, against a brute-force PromQL."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.promql import promql_reference

from bridge.math import (
    bucket_increase,
    histogram_min,
    histogram_quantile,
    histogram_quantiles,
    histogram_summaries,
    histogram_summaries_of_layouts,
    histogram_summary,
    increase,
    mean,
    rate,
)

INF = math.inf


def test_the_documented_vector():
    bounds = np.array([0, 0.5, 1, INF])
    assert histogram_quantile(0.5, bounds, np.array([6, 11, 14, 19.0])) == pytest.approx(0.35)


def test_edges():
    bounds = np.array([0.1, 0.2, INF])
    assert math.isnan(histogram_quantile(0.5, bounds, np.array([0, 0, 0.0])))  # empty window
    assert histogram_quantile(0.99, bounds, np.array([0, 0, 5.0])) == 0.2  # all in +Inf: highest bound
    assert histogram_quantile(0.5, bounds, np.array([4, 4, 4.0])) == pytest.approx(0.05)  # first bucket from 0
    assert histogram_quantile(1.0, bounds, np.array([1, 3, 3.0])) == pytest.approx(0.2)
    assert math.isnan(histogram_quantile(0.5, np.array([0.1, 0.2]), np.array([1, 2.0])))  # no +Inf
    assert histogram_quantile(-1, bounds, np.array([1, 1, 1.0])) == -INF
    assert histogram_quantile(2, bounds, np.array([1, 1, 1.0])) == INF


def test_min_is_the_lower_edge_of_the_first_non_empty_bucket():
    bounds = np.array([0.1, 0.2, 0.5, INF])
    assert histogram_min(bounds, np.array([0, 0, 3, 3.0])) == 0.2
    assert histogram_min(bounds, np.array([1, 1, 3, 3.0])) == 0.0
    assert histogram_min(bounds, np.array([0, 0, 0, 2.0])) == 0.5
    assert math.isnan(histogram_min(bounds, np.zeros(4)))
    # Where PromQL's 0-quantile is defined, they agree.
    assert histogram_min(bounds, np.array([1, 1, 3, 3.0])) == histogram_quantile(0, bounds, np.array([1, 1, 3, 3.0]))


@st.composite
def histograms(draw):
    n = draw(st.integers(min_value=1, max_value=12))
    bounds = sorted(set(draw(st.lists(st.floats(-5, 100, allow_nan=False), min_size=n, max_size=n))))
    increments = draw(st.lists(st.integers(0, 50), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    cumulative = np.cumsum(increments).astype(float)
    return [*bounds, INF], list(cumulative)


@given(histograms(), st.floats(min_value=0, max_value=1))
def test_matches_brute_force_promql(histogram, q):
    bounds, cumulative = histogram
    expected = promql_reference(q, bounds, cumulative)
    got = histogram_quantile(q, np.array(bounds), np.array(cumulative))
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


@given(histograms(), st.lists(st.integers(-3, 3), min_size=13, max_size=13))
def test_non_monotonic_counts_are_forced_monotonic_like_promql(histogram, noise):
    bounds, cumulative = histogram
    noisy = [max(c + d, 0) for c, d in zip(cumulative, noise, strict=False)]
    for q in (0.1, 0.5, 0.9, 0.99):
        expected = promql_reference(q, bounds, noisy)
        got = histogram_quantile(q, np.array(bounds), np.array(noisy, dtype=float))
        assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected)


def test_rates_handle_counter_resets():
    assert increase(10, 25) == 15
    assert increase(10, 4) == 4  # restarted, counted 4 since
    assert rate(10, 30, 4.0) == 5.0
    assert rate(10, 30, 0) == 0.0
    assert list(bucket_increase(np.array([1, 2, 5.0]), np.array([2, 4, 9.0]))) == [1, 2, 4]
    assert list(bucket_increase(np.array([3, 5, 9.0]), np.array([1, 2, 2.0]))) == [1, 2, 2]


def test_mean():
    assert mean(3.0, 2.0) == 1.5
    assert math.isnan(mean(0.0, 0.0))


@given(histograms(), st.lists(st.integers(-3, 3), min_size=13, max_size=13), st.lists(st.floats(-0.5, 1.5), max_size=6))
def test_several_quantiles_at_once_match_brute_force_promql(histogram, noise, qs):
    bounds, cumulative = histogram
    noisy = [max(c + d, 0) for c, d in zip(cumulative, noise, strict=False)]
    qs = [*qs, 0.5, 0.99, 1.0]
    got = histogram_quantiles(qs, np.array(bounds), np.array(noisy, dtype=float))
    for q, value in zip(qs, got, strict=True):
        expected = promql_reference(q, bounds, noisy)
        assert (math.isnan(expected) and math.isnan(value)) or value == pytest.approx(expected), q


@given(histograms(), st.lists(st.integers(-3, 3), min_size=13, max_size=13))
def test_the_summary_is_the_minimum_and_the_quantiles_each_on_its_own(histogram, noise):
    bounds, cumulative = histogram
    noisy = [max(c + d, 0) for c, d in zip(cumulative, noise, strict=False)]
    minimum, quantiles = histogram_summary((1.0, 0.5, 0.9), np.array(bounds), np.array(noisy, dtype=float))
    # Brute force: the lower edge of the first bucket whose (forced monotonic) count is above zero.
    monotonic = list(itertools.accumulate(noisy, max))
    first = next((i for i, count in enumerate(monotonic) if count > 0), None)
    if first is None or (first == len(bounds) - 1 and len(bounds) == 1):
        assert math.isnan(minimum)
    elif first == len(bounds) - 1:
        assert minimum == bounds[-2]
    else:
        assert minimum == (0.0 if first == 0 else bounds[first - 1])
    for q, value in zip((1.0, 0.5, 0.9), quantiles, strict=True):
        expected = promql_reference(q, bounds, noisy)
        assert (math.isnan(expected) and math.isnan(value)) or value == pytest.approx(expected), q


@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(-5, 100, allow_nan=False), min_size=n, max_size=n, unique=True).map(sorted),
            st.lists(
                st.lists(st.integers(-3, 50), min_size=n + 1, max_size=n + 1).map(
                    lambda steps: list(itertools.accumulate(steps))  # some rows not monotonic
                ),
                min_size=1,
                max_size=6,
            ),
        )
    ),
    st.lists(st.floats(-0.5, 1.5), max_size=4),
)
def test_summaries_of_many_rows_are_each_rows_summary_bit_for_bit(histogram, qs):
    finite, rows = histogram
    qs = [*qs, 1.0, 0.5, 0.9, 0.99, 0.0, math.nan]
    bounds = np.array([*finite, INF])
    matrix = np.array([[max(c, 0) for c in row] for row in rows], dtype=float)
    minimums, quantiles = histogram_summaries(qs, bounds, matrix)
    assert minimums.shape == (len(rows),) and quantiles.shape == (len(rows), len(qs))
    for index, row in enumerate(matrix):
        minimum, expected = histogram_summary(qs, bounds, row)
        # Equal as stored (NaN equal to NaN): the stream's figures must not depend on how they were computed.
        assert np.array_equal([minimums[index]], [minimum], equal_nan=True)
        assert np.array_equal(quantiles[index], expected, equal_nan=True), (row, qs)


def test_summaries_without_an_inf_bucket_or_rows():
    bounds = np.array([0.1, 0.5])
    minimums, quantiles = histogram_summaries((0.5, 2.0), bounds, np.array([[1.0, 3.0]]))
    assert np.isnan(quantiles[0, 0]) and quantiles[0, 1] == INF
    assert minimums[0] == histogram_summary((0.5,), bounds, np.array([1.0, 3.0]))[0]
    empty_minimums, empty_quantiles = histogram_summaries((0.5,), np.array([1.0, INF]), np.zeros((0, 2)))
    assert empty_minimums.shape == (0,) and empty_quantiles.shape == (0, 1)


@given(
    st.lists(
        st.integers(min_value=1, max_value=10).flatmap(
            lambda n: st.tuples(
                st.lists(st.floats(-5, 100, allow_nan=False), min_size=n, max_size=n, unique=True).map(sorted),
                st.lists(
                    st.lists(st.integers(-3, 50), min_size=n + 1, max_size=n + 1).map(
                        lambda steps: list(itertools.accumulate(steps))
                    ),
                    min_size=0,
                    max_size=4,
                ),
                st.lists(st.floats(0.001, 1.0), min_size=1, max_size=4),  # each layout its own quantiles
            )
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_layouts_summarized_together_are_each_layouts_summaries_bit_for_bit(histograms, with_zero):
    # Layouts of different widths, some starting at or below 0, some with a count below 0 (each computed
    # on its own), rows that go down; each asking for its own quantiles, as many as another or fewer.
    end = 0.0 if with_zero else 1.0  # a q of 0 could tell the padding apart: not padded
    layouts = [
        ([*qs, end], np.array([*finite, INF]), np.array(rows, dtype=float).reshape(-1, len(finite) + 1))
        for finite, rows, qs in histograms
    ]
    results = histogram_summaries_of_layouts(layouts)
    assert len(results) == len(layouts)
    for (qs, bounds, rows), (minimums, quantiles) in zip(layouts, results, strict=True):
        expected_minimums, expected = histogram_summaries(qs, bounds, rows)
        assert np.array_equal(minimums, expected_minimums, equal_nan=True)
        assert np.array_equal(quantiles, expected, equal_nan=True), (bounds, rows, qs)
