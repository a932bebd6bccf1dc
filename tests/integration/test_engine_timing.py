"""What a client measures against a real server when the engine drafts tokens (speculative decoding)
or chunks a long prefill: the stream's chunk arrival times."""

import statistics
import threading
import time
from itertools import pairwise

import httpx

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
STEADY = ("--itl-ms", "20", "--itl-jitter", "0", "--overhead-ms", "0")


def stream_stamps(url: str, max_tokens: int, started: threading.Event | None = None) -> tuple[list[float], int]:
    """Arrival time of every content chunk of one stream, and its completion tokens."""
    body = {"model": MODEL, "prompt": "Tell me", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    body["stream_options"] = {"include_usage": True}
    stamps: list[float] = []
    tokens = 0
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if '"usage":{' in line and '"choices":[]' in line:
                tokens = int(line.split('"completion_tokens":')[1].split(",")[0])
            elif line.startswith("data: {"):
                stamps.append(time.monotonic())
                if started is not None and len(stamps) == 15:
                    started.set()
    return stamps, tokens


def test_speculative_decoding_gives_the_same_answer_in_less_time(start_server):
    plain = start_server(*STEADY)
    drafting = start_server(
        *STEADY,
        "--speculative-config",
        '{"method": "ngram", "num_speculative_tokens": 3}',
        "--spec-acceptance-rates",
        "0.9,0.9,0.9",
    )
    plain_stamps, plain_tokens = stream_stamps(plain.url, 32)
    fast_stamps, fast_tokens = stream_stamps(drafting.url, 32)
    assert plain_tokens == fast_tokens == 32
    assert len(plain_stamps) == 32 and len(fast_stamps) < 20
    # Client-measured time per output token: 31 decode steps of 20 ms against about 9.
    plain_tpot = (plain_stamps[-1] - plain_stamps[0]) / 31
    fast_tpot = (fast_stamps[-1] - fast_stamps[0]) / 31
    assert fast_tpot < 0.6 * plain_tpot, (fast_tpot, plain_tpot)


def test_a_running_stream_slows_while_a_long_prompt_is_chunked(start_server):
    server = start_server(
        "--max-num-batched-tokens",
        "2048",
        "--itl-ms",
        "10",
        "--itl-jitter",
        "0",
        "--overhead-ms",
        "0",
        "--prefill-ms-per-token",
        "0.05",  # a 2,048-token chunk adds about 100 ms to its step
    )
    started = threading.Event()
    result: dict[str, list[float]] = {}
    reader = threading.Thread(target=lambda: result.update(stamps=stream_stamps(server.url, 80, started)[0]))
    reader.start()
    assert started.wait(30)
    long = httpx.post(
        server.url + "/v1/completions",
        json={"model": MODEL, "prompt": " wor" * 6000, "max_tokens": 1},
        timeout=60,
    )
    reader.join(60)
    assert long.status_code == 200
    stamps = result["stamps"]
    assert len(stamps) == 80
    gaps = [b - a for a, b in pairwise(stamps)]
    usual = statistics.median(gaps)
    slow = [i for i, gap in enumerate(gaps) if gap > usual + 0.05]
    # Three chunked steps in a row, each about 100 ms longer than the usual 10 ms; the gaps before and
    # after them are the usual ones (margins of 50 ms and 5 ms for a noisy machine).
    assert len(slow) == 3 and slow[2] - slow[0] == 2, (slow, usual)
    assert statistics.median(gaps[: slow[0]]) < usual + 0.005
    assert statistics.median(gaps[slow[2] + 1 :]) < usual + 0.005
