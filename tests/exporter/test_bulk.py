from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from exporter.bulk import observe, observe_many

BOUNDS = (0.001, 0.01, 0.1, 1.0, 10.0)


def histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("h_seconds", "h", ["k"], buckets=BOUNDS, registry=registry)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=100, allow_nan=False) | st.sampled_from(BOUNDS),
            st.integers(min_value=0, max_value=50),
        ),
        max_size=20,
    )
)
def test_observe_many_equals_repeated_observe(observations):
    bulk_registry, loop_registry = CollectorRegistry(), CollectorRegistry()
    bulk, loop = histogram(bulk_registry).labels("a"), histogram(loop_registry).labels("a")
    for amount, count in observations:
        if count == 1:
            observe(bulk, amount)
        else:
            observe_many(bulk, amount, count)
        for _ in range(count):
            loop.observe(amount)
    assert bulk_registry.get_sample_value("h_seconds_count", {"k": "a"}) == sum(c for _, c in observations)
    for le in ("0.001", "0.01", "0.1", "1.0", "10.0", "+Inf"):
        labels = {"k": "a", "le": le}
        assert bulk_registry.get_sample_value("h_seconds_bucket", labels) == loop_registry.get_sample_value(
            "h_seconds_bucket", labels
        )
    total = loop_registry.get_sample_value("h_seconds_sum", {"k": "a"})
    assert abs(bulk_registry.get_sample_value("h_seconds_sum", {"k": "a"}) - total) <= 1e-9 * max(1.0, total)


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=30))
def test_inc_equals_counter_and_gauge_inc(amounts):
    from prometheus_client import Counter, Gauge

    from exporter.bulk import inc

    registry = CollectorRegistry()
    fast_c, slow_c = (Counter(f"c{i}", "c", ["k"], registry=registry).labels("a") for i in range(2))
    fast_g, slow_g = (Gauge(f"g{i}", "g", ["k"], registry=registry).labels("a") for i in range(2))
    for amount in amounts:
        inc(fast_c, amount)
        slow_c.inc(amount)
        inc(fast_g, amount)
        slow_g.inc(amount)
    assert registry.get_sample_value("c0_total", {"k": "a"}) == registry.get_sample_value("c1_total", {"k": "a"})
    assert registry.get_sample_value("g0", {"k": "a"}) == registry.get_sample_value("g1", {"k": "a"})


@given(st.lists(st.integers(min_value=0, max_value=10**7), max_size=30))
def test_observe_summary_equals_summary_observe(amounts):
    from prometheus_client import Summary

    from exporter.bulk import observe_summary

    registry = CollectorRegistry()
    fast, slow = (Summary(f"s{i}_bytes", "s", ["k"], registry=registry).labels("a") for i in range(2))
    for amount in amounts:
        observe_summary(fast, amount)
        slow.observe(amount)
    for sample in ("count", "sum"):
        assert registry.get_sample_value(f"s0_bytes_{sample}", {"k": "a"}) == registry.get_sample_value(
            f"s1_bytes_{sample}", {"k": "a"}
        )
