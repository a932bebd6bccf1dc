"""Bucket sets: vLLM's written out here from vLLM's documentation, independently of exporter.buckets."""

import pytest

from exporter import buckets

VLLM_TTFT = [
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
]
VLLM_ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
VLLM_PHASE = [
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
]


def test_vllm_sets_have_the_documented_sizes():
    assert list(buckets.VLLM_TTFT) == VLLM_TTFT and len(VLLM_TTFT) == 22
    assert list(buckets.VLLM_ITL) == VLLM_ITL and len(VLLM_ITL) == 19
    assert list(buckets.VLLM_REQUEST_PHASE) == VLLM_PHASE and len(VLLM_PHASE) == 21


@pytest.mark.parametrize(
    ("native", "vllm"),
    [
        (buckets.TTFT, VLLM_TTFT),
        (buckets.ITL, VLLM_ITL),
        (buckets.REQUEST_PHASE, VLLM_PHASE),
        (buckets.PARAMS_N, [1, 2, 5, 10, 20]),
        (buckets.ITERATION_TOKENS, [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]),
        (buckets.HTTP_REQUEST_DURATION, [0.1, 0.5, 1.0]),
    ],
)
def test_native_sets_are_sorted_supersets_of_vllm(native, vllm):
    assert list(native) == sorted(set(native))
    assert set(vllm) <= set(native)


def test_native_sets_add_finer_bounds_below_vllm():
    assert min(buckets.REQUEST_PHASE) < 0.3
    assert min(buckets.ITL) < 0.01


@pytest.mark.parametrize(
    ("max_len", "expected"),
    [
        (1, [1]),
        (10, [1, 2, 5, 10]),
        (8192, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]),
        (100000, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]),
    ],
)
def test_one_two_five_matches_vllm(max_len, expected):
    assert list(buckets.one_two_five(max_len)) == expected
