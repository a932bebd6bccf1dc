"""The simulated engine on its own: scheduling, batching, preemption, cancellation, determinism."""

import asyncio
import random
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from exporter.metrics import ServerMetrics
from fakeai.engine.faults import Fault, FaultKind
from fakeai.engine.latency import LatencyModel
from fakeai.engine.prefix_cache import PrefixCache
from fakeai.engine.profiles import LatencyProfile
from fakeai.engine.scheduler import ModelEngine, QueueFullError
from fakeai.engine.sequence import Choice, GenerationRequest, State

EP, MODEL = "/v1/chat/completions", "m"


def make_engine(
    registry,
    *,
    itl_ms=2.0,
    jitter=0.0,
    max_num_seqs=4,
    max_waiting=100,
    num_blocks=1000,
    block_size=4,
    seed=0,
    no_delay=False,
    output_tokens=96,
):
    metrics = ServerMetrics(registry, models=[MODEL], endpoints=[EP], max_model_len=4096)
    rng = random.Random(seed)
    profile = LatencyProfile(
        overhead_ms=0, prefill_ms_per_token=0.0, itl_ms=itl_ms, itl_jitter=jitter, output_tokens=output_tokens
    )
    engine = ModelEngine(
        MODEL,
        latency=LatencyModel(profile, rng, no_delay=no_delay),
        cache=PrefixCache(block_size, num_blocks),
        metrics=metrics.model(MODEL),
        rng=rng,
        max_num_seqs=max_num_seqs,
        max_waiting=max_waiting,
        max_model_len=4096,
    )
    return engine, metrics


def request(prompt_len=8, max_tokens=5, **kwargs):
    return GenerationRequest(
        endpoint=EP,
        model=MODEL,
        prompt_tokens=list(range(prompt_len)),
        arrival=time.monotonic(),
        max_tokens=max_tokens,
        ignore_eos=True,
        **kwargs,
    )


def gauge(registry, name):
    return registry.get_sample_value(name, {"endpoint": EP, "model": MODEL})


async def test_batch_never_exceeds_max_num_seqs_and_everyone_finishes(registry):
    engine, metrics = make_engine(registry, max_num_seqs=2)
    engine.start()
    seen_running = []
    seqs = [engine.submit(request(), metrics.request(EP, MODEL)) for _ in range(6)]
    while not all(s.done.done() for s in seqs):
        seen_running.append(len(engine.running))
        await asyncio.sleep(0.001)
    await engine.stop()
    assert max(seen_running) == 2
    assert all(s.completion_tokens == 5 and s.state is State.FINISHED for s in seqs)
    assert gauge(registry, "fakeai_requests_running") == 0
    assert gauge(registry, "fakeai_requests_waiting") == 0
    # The later requests really waited for a slot.
    assert registry.get_sample_value("fakeai_request_queue_time_seconds_count", {"endpoint": EP, "model": MODEL}) == 6
    assert max(s.scheduled - s.queued for s in seqs) > 0.005


async def test_requests_of_one_batch_share_steps(registry):
    engine, metrics = make_engine(registry, itl_ms=5)
    engine.start()
    a = engine.submit(request(max_tokens=4), metrics.request(EP, MODEL))
    b = engine.submit(request(max_tokens=4), metrics.request(EP, MODEL))
    await asyncio.gather(a.done, b.done)
    await engine.stop()
    assert a.first_token == b.first_token and a.last_token == b.last_token
    steps = registry.get_sample_value("fakeai_iteration_tokens_count", {"model": MODEL})
    assert steps == 4  # one step per token, both requests in each


async def test_queue_full_is_refused(registry):
    engine, metrics = make_engine(registry, max_num_seqs=1, max_waiting=2)
    engine.submit(request(), metrics.request(EP, MODEL))
    engine.submit(request(), metrics.request(EP, MODEL))
    with pytest.raises(QueueFullError):
        engine.submit(request(), metrics.request(EP, MODEL))
    await engine.stop()
    assert gauge(registry, "fakeai_requests_waiting") == 0


async def test_cancel_releases_slot_and_gauges(registry):
    engine, metrics = make_engine(registry, itl_ms=20, max_num_seqs=1)
    engine.start()
    running = engine.submit(request(max_tokens=1000), metrics.request(EP, MODEL))
    waiting = engine.submit(request(max_tokens=2), metrics.request(EP, MODEL))
    await asyncio.sleep(0.1)
    assert gauge(registry, "fakeai_requests_running") == 1 and gauge(registry, "fakeai_requests_waiting") == 1
    engine.cancel(running)
    await asyncio.wait_for(waiting.done, 5)
    engine.cancel(running)  # idempotent
    await engine.stop()
    assert running.cancelled and running.completion_tokens < 1000
    assert gauge(registry, "fakeai_requests_running") == 0 and gauge(registry, "fakeai_requests_waiting") == 0


async def test_kv_pressure_preempts_the_latest_request(registry):
    # 10 blocks of 4 tokens; two requests of 8-token prompts growing to 24 tokens cannot both fit.
    engine, metrics = make_engine(registry, num_blocks=10, itl_ms=1.0)
    engine.start()
    seqs = [engine.submit(request(prompt_len=8, max_tokens=16), metrics.request(EP, MODEL)) for _ in range(2)]
    await asyncio.gather(*(s.done for s in seqs))
    await engine.stop()
    assert registry.get_sample_value("fakeai_preemptions_total", {"model": MODEL}) >= 1
    assert all(s.completion_tokens == 16 for s in seqs)
    assert gauge(registry, "fakeai_requests_running") == 0 and gauge(registry, "fakeai_requests_waiting") == 0
    assert registry.get_sample_value("fakeai_kv_cache_usage_ratio", {"model": MODEL}) == 0


async def test_a_full_pool_preempts_only_when_a_running_request_needs_a_block(registry):
    # vLLM v1: a running request takes a new block only when its last one fills, and the newest running
    # request is preempted when none is free; no blocks are held back beyond that, so the pool runs full.
    # 10 blocks of 4 tokens: two 8-token prompts (2 blocks each) admitted together, growing in step.
    engine, metrics = make_engine(registry, num_blocks=10, itl_ms=1.0)
    usage: list[float] = []
    preempted_at: list[int] = []
    record_usage, preempt = engine.metrics.kv_cache_usage, engine._preempt

    def kv_cache_usage(value):
        usage.append(value)
        record_usage(value)

    def preempting(seq):
        preempted_at.append(seq.choices[0].emitted)
        preempt(seq)

    engine.metrics.kv_cache_usage = kv_cache_usage
    engine._preempt = preempting
    engine.start()
    first, second = (engine.submit(request(prompt_len=8, max_tokens=16), metrics.request(EP, MODEL)) for _ in range(2))
    await asyncio.gather(first.done, second.done)
    await engine.stop()
    # After 12 tokens each (2 + 3 blocks apiece) the pool is full; the 13th token of the first needs a
    # sixth block: the second, the newest, gives its blocks up then, and not a token earlier.
    assert preempted_at == [12]
    assert max(usage) == 1.0
    assert (first.preemptions, second.preemptions) == (0, 1)
    assert first.completion_tokens == second.completion_tokens == 16


def test_stop_sequence_ends_the_choice_with_stop():
    choice = Choice(target=10, reason="length", words=[" one", " two", " three", " four"])
    deltas = [choice.next_delta(0, (" thr",)) for _ in range(3)]
    assert [d.text for d in deltas] == [" one", " two", ""]
    assert deltas[-1].finish_reason == "stop" and choice.emitted == 3
    assert "".join(choice.text) == " one two"


def test_stop_sequence_spanning_two_tokens_cuts_inside_the_second():
    choice = Choice(target=10, reason="length", words=[" one", " two", " three"])
    deltas = [choice.next_delta(0, ("e tw",)) for _ in range(2)]
    assert [d.text for d in deltas] == [" one", ""]
    assert "".join(choice.text) == " one"  # the first token was already sent: its text stays


def test_length_is_the_reason_when_the_target_is_reached():
    choice = Choice(target=2, reason="length", words=[" a", " b"])
    assert [choice.next_delta(0, ()).finish_reason for _ in range(2)] == [None, "length"]


async def test_n_choices_each_get_tokens(registry):
    engine, metrics = make_engine(registry, no_delay=True)
    engine.start()
    seq = engine.submit(request(max_tokens=7, n=3), metrics.request(EP, MODEL))
    await seq.done
    await engine.stop()
    assert [c.emitted for c in seq.choices] == [7, 7, 7]
    assert seq.completion_tokens == 21
    assert registry.get_sample_value("fakeai_completion_tokens_total", {"endpoint": EP, "model": MODEL}) == 21


async def test_abort_fault_fails_mid_generation(registry):
    engine, metrics = make_engine(registry, no_delay=True)
    engine.start()
    seq = engine.submit(
        request(max_tokens=40, fault=Fault(FaultKind.ABORT, abort_fraction=0.5)), metrics.request(EP, MODEL)
    )
    await seq.done
    await engine.stop()
    assert seq.failed and seq.completion_tokens == 20


async def test_same_seed_same_answers():
    texts = []
    for _ in range(2):
        registry = CollectorRegistry()
        engine, metrics = make_engine(registry, no_delay=True, seed=42)
        engine.start()
        seq = engine.submit(
            GenerationRequest(endpoint=EP, model=MODEL, prompt_tokens=[1, 2, 3], arrival=time.monotonic()),
            metrics.request(EP, MODEL),
        )
        await seq.done
        await engine.stop()
        texts.append("".join(seq.choices[0].text))
    assert texts[0] == texts[1] and texts[0]


def test_step_time_follows_the_profile():
    rng = random.Random(1)
    exact = LatencyModel(LatencyProfile(itl_ms=20, itl_jitter=0, prefill_ms_per_token=0.5), rng)
    assert exact.step_time(batch_size=1, prefill_tokens=100) == pytest.approx(0.070)
    slower = LatencyModel(LatencyProfile(itl_ms=20, itl_jitter=0, batch_slowdown=0.1), rng)
    assert slower.step_time(batch_size=11, prefill_tokens=0) == pytest.approx(0.040)
    jittered = LatencyModel(LatencyProfile(itl_ms=20, itl_jitter=0.2), rng)
    samples = [jittered.step_time(1, 0) for _ in range(2000)]
    assert np.median(samples) == pytest.approx(0.020, rel=0.05)
    assert LatencyModel(LatencyProfile(), rng, no_delay=True).step_time(50, 1000) == 0.0


def test_step_sizes_of_choices_decoded_together():
    from fakeai.engine.sequence import step_sizes

    assert step_sizes([16]) == {1: 16}
    assert step_sizes([3, 5]) == {2: 3, 1: 2}
    assert step_sizes([4, 4, 1]) == {3: 1, 2: 3}
    assert step_sizes([]) == {}


async def test_no_delay_decodes_on_arrival_with_the_same_accounting(registry):
    engine, metrics = make_engine(registry, no_delay=True)
    seq = engine.submit(request(max_tokens=9, n=2), metrics.request(EP, MODEL))
    assert seq.done.done() and seq.completion_tokens == 18  # no engine loop was needed
    labels = {"endpoint": EP, "model": MODEL}
    assert registry.get_sample_value("fakeai_completion_tokens_total", labels) == 18
    assert registry.get_sample_value("fakeai_inter_token_latency_seconds_count", labels) == 16
    assert registry.get_sample_value("fakeai_iteration_tokens_count", {"model": MODEL}) == 9
    assert registry.get_sample_value("fakeai_iteration_tokens_sum", {"model": MODEL}) == 18 + 8  # + prefill
    assert registry.get_sample_value("fakeai_requests_running", labels) == 0
    await engine.stop()


async def test_a_started_engine_admits_without_asking_asyncio_for_the_loop(registry, monkeypatch):
    """Python 3.11's ``asyncio.get_running_loop`` makes a getpid system call: a started engine gives each
    sequence the loop it runs on instead, for its completion and a stream's waits between steps."""
    engine, metrics = make_engine(registry)
    engine.start()
    running = asyncio.get_running_loop()

    def refused() -> asyncio.AbstractEventLoop:
        raise AssertionError("asked asyncio for the running loop")

    monkeypatch.setattr(asyncio, "get_running_loop", refused)
    seq = engine.submit(request(max_tokens=3), metrics.request(EP, MODEL))
    streamed = engine.submit(request(max_tokens=3, stream=True), metrics.request(EP, MODEL))
    assert streamed.updates is not None
    tokens = 0
    while (deltas := await asyncio.wait_for(streamed.updates.get(), 5)) is not None:  # a wait a step
        tokens += sum(delta.tokens for delta in deltas)
    monkeypatch.undo()
    assert seq.done.get_loop() is running
    await asyncio.wait_for(seq.done, 5)
    assert seq.completion_tokens == 3 and tokens == 3
    await engine.stop()


async def test_no_delay_abort_and_stop_sequence(registry):
    from fakeai.engine.tokens import Writer, first_stop

    engine, metrics = make_engine(registry, no_delay=True, seed=9)
    # ignore_eos draws no natural length, so the engine's writer gives this request the next 40 words.
    words = Writer(random.Random(9)).words(40)
    text = "".join(words)
    index = next(i for i in range(3, 40) if first_stop(text, (words[i],)) == len("".join(words[:i])))
    stopped = engine.submit(request(max_tokens=40, stop=(words[index],)), metrics.request(EP, MODEL))
    assert stopped.choices[0].finish_reason == "stop"
    assert "".join(stopped.choices[0].text) == "".join(words[:index])
    assert stopped.completion_tokens == index + 1  # the token that completed the stop was generated
    aborted = engine.submit(
        request(max_tokens=40, fault=Fault(FaultKind.ABORT, abort_fraction=0.25)), metrics.request(EP, MODEL)
    )
    assert aborted.failed and aborted.completion_tokens == 10
    await engine.stop()


async def test_the_engine_logs_as_sglang_does_every_prefill_batch_and_every_40_decode_steps(registry):
    # SGLang's scheduler logs every prefill batch (its prefix-cache hit share) and every 40 decode steps
    # (the tokens generated since the last such log per second, and the hit rate back to 0).
    # The log's interval starts when the engine is made: so does the elapsed time it is bounded by.
    began = time.monotonic()
    engine, metrics = make_engine(registry, itl_ms=1.0)
    hit_rates: list[float] = []
    throughputs: list[float] = []
    prefill_logged, decode_logged = engine.metrics.prefill_logged, engine.metrics.decode_logged

    def on_prefill(rate):
        hit_rates.append(rate)
        prefill_logged(rate)

    def on_decode(rate):
        throughputs.append(rate)
        decode_logged(rate)

    engine.metrics.prefill_logged, engine.metrics.decode_logged = on_prefill, on_decode
    engine.start()
    first = engine.submit(request(prompt_len=16, max_tokens=45), metrics.request(EP, MODEL))
    await first.done
    elapsed = time.monotonic() - began
    second = engine.submit(request(prompt_len=16, max_tokens=2), metrics.request(EP, MODEL))
    await second.done
    await engine.stop()
    # The first prompt was new; the second's first three blocks of 4 were cached (the last token is
    # always computed, so its block is not a hit).
    assert hit_rates == [0.0, 12 / 16]
    # 47 steps emitted tokens: one log, after the 40th, of 40 tokens over at least 40 steps of 1 ms.
    assert len(throughputs) == 1 and 40 / elapsed <= throughputs[0] <= 40 / 0.040
    assert registry.get_sample_value("fakeai_cache_hit_rate", {"model": MODEL}) == 12 / 16
    assert registry.get_sample_value("fakeai_gen_throughput", {"model": MODEL}) == throughputs[0]
