"""A scenario phase's built-in load, as arithmetic: arrival times for constant and ramped rates, and the
requests drawn (lengths, shares, prompts that tokenize to exactly the drawn length)."""

import itertools
import random
import statistics
from collections import Counter

import pytest

from fakeai.engine.tokens import count_tokens
from fakeai.scenario import Traffic
from fakeai.traffic.arrivals import arrival_times, prompt_text, request, time_of_mass

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def test_even_arrivals_at_a_constant_rate_are_evenly_spaced_and_add_up():
    times = list(arrival_times(4.0, 4.0, 10.0, "even", random.Random(0)))
    assert len(times) == 40
    assert times == pytest.approx([(k + 0.5) / 4.0 for k in range(40)])


@pytest.mark.parametrize(("start", "end", "first_half"), [(0.0, 20.0, 25), (20.0, 0.0, 75), (5.0, 15.0, 37.5)])
def test_even_arrivals_on_a_ramp_follow_the_area_under_the_rate(start, end, first_half):
    times = list(arrival_times(start, end, 10.0, "even", random.Random(0)))
    # The area under a straight line: (start + end) / 2 * duration requests; in the first half, a quarter
    # or three quarters of them on a ramp from or to zero, 5 * 5 + 12.5 on the ramp from 5 to 15.
    assert len(times) == round((start + end) / 2 * 10.0)
    assert abs(sum(t < 5.0 for t in times) - first_half) <= 1
    assert times == sorted(times) and times[0] >= 0 and times[-1] <= 10.0


def test_poisson_arrivals_have_the_rate_and_exponential_gaps():
    times = list(arrival_times(50.0, 50.0, 200.0, "poisson", random.Random(7)))
    assert abs(len(times) - 10_000) <= 400  # four standard deviations of a Poisson count
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert statistics.mean(gaps) == pytest.approx(0.02, rel=0.05)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential: CV 1


def test_poisson_arrivals_on_a_ramp_and_the_same_seed_gives_the_same_times():
    times = list(arrival_times(0.0, 100.0, 100.0, "poisson", random.Random(3)))
    assert abs(len(times) - 5000) <= 300
    assert abs(sum(t < 50.0 for t in times) / len(times) - 0.25) <= 0.03
    assert times == list(arrival_times(0.0, 100.0, 100.0, "poisson", random.Random(3)))


def test_the_cumulative_rate_is_inverted_exactly():
    for start, end in ((0.0, 20.0), (20.0, 0.0), (3.0, 3.0), (1.0, 9.0)):
        for mass in (0.5, 7.0, 30.0):
            t = time_of_mass(mass, start, end, 10.0)
            if t is not None:
                assert start * t + (end - start) * t * t / 20.0 == pytest.approx(mass)
    assert time_of_mass(101.0, 0.0, 20.0, 10.0) is None  # more than the phase holds


@pytest.mark.parametrize("shared", [True, False])
def test_prompts_have_exactly_the_drawn_tokens_and_differ_by_their_number(shared):
    for tokens in (1, 2, 3, 7, 64, 1000):
        for index in (0, 9, 1234, 1_234_567):
            assert count_tokens(prompt_text(tokens, index, shared)) == tokens
    assert len({prompt_text(64, i, shared) for i in range(500)}) == 500
    if shared:
        assert prompt_text(64, 1, True)[:100] == prompt_text(64, 2, True)[:100]


def test_requests_follow_the_mixes_and_lengths():
    traffic = Traffic.model_validate(
        {
            "rate": 1,
            "models": {MODEL: 3, "other": 1},
            "endpoints": {"chat": 1, "completions": 1},
            "stream": 0.25,
            "prompt_tokens": {"min": 10, "max": 20},
            "output_tokens": {"median": 50, "sigma": 0.5},
            "prefix_reuse": 0.5,
        }
    )
    rng = random.Random(11)
    requests = [request(traffic, i, "unused", rng) for i in range(4000)]
    paths = Counter(path for path, _ in requests)
    assert abs(paths["/v1/chat/completions"] / 4000 - 0.5) < 0.04
    assert abs(sum(body["model"] == MODEL for _, body in requests) / 4000 - 0.75) < 0.04
    assert abs(sum(body["stream"] for _, body in requests) / 4000 - 0.25) < 0.04
    outputs = sorted(body["max_tokens"] for _, body in requests)
    assert 45 <= outputs[2000] <= 55 and outputs[-1] > 100  # median 50, a long tail
    for path, body in requests:
        prompt = body["messages"][0]["content"] if path == "/v1/chat/completions" else body["prompt"]
        assert 10 <= count_tokens(prompt) <= 20 and body["ignore_eos"] is True
    shared = sum(body.get("prompt", "").startswith("ctx ctx ctx ctx ctx") for _, body in requests)
    assert abs(shared / paths["/v1/completions"] - 0.5) < 0.06
    # Without models, every request asks for the server's first model.
    plain = Traffic.model_validate({"rate": 1})
    assert {request(plain, i, MODEL, rng)[1]["model"] for i in range(50)} == {MODEL}
