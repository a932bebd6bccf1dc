"""``exporter.views.aggregate``: the pure helpers every dialect view is built from."""

import random

import pytest
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from exporter.textformat import TextWriter
from exporter.views.aggregate import HistogramGroup, histogram_family


def by_add_metric(name, labels, groups) -> HistogramMetricFamily:
    """What prometheus-client's own ``add_metric`` makes of the same groups."""
    family = HistogramMetricFamily(name, "doc", labels=list(labels))
    for key, group in sorted(groups.items()):
        buckets = [(floatToGoString(b), c) for b, c in zip(group.bounds, group.cumulative, strict=True)]
        family.add_metric(list(key), [*buckets, ("+Inf", group.count)], group.total)
    return family


def random_groups(rng: random.Random, bounds: tuple[float, ...], keys: list[tuple[str, ...]]):
    groups = {}
    for key in keys:
        group = HistogramGroup(bounds)
        running = 0.0
        for index in range(len(bounds)):
            running += rng.randrange(5)
            group.cumulative[index] = running
        group.count = running + rng.randrange(3)
        group.total = rng.uniform(0, 100)
        groups[key] = group
    return groups


@pytest.mark.parametrize(
    ("labels", "keys", "bounds"),
    [
        (("method",), [("prefill",), ("decode",)], (0.00015, 0.1, 2.5)),
        ((), [()], tuple(float(b) for b in range(1, 1025))),
        (("model_name", "engine"), [("a", "0"), ('we"ird', "1")], (1.0, 2.0, 5.0)),
        (("x",), [("neg",)], (-1.0, 0.0, 1.0)),
        ((), [()], ()),
    ],
)
def test_a_grouped_histogram_is_what_add_metric_makes_and_writes_the_same_lines(labels, keys, bounds):
    rng = random.Random(len(bounds))
    for _ in range(2):  # the second time, from the label cache
        groups = random_groups(rng, bounds, keys)
        got, expected = histogram_family("h", "doc", labels, groups), by_add_metric("h", labels, groups)
        assert (got.name, got.type, got.documentation) == (expected.name, expected.type, expected.documentation)
        # The text writer writes a grouped family from its groups, without its samples: the same lines.
        writer = TextWriter()
        assert writer.family(got) == TextWriter().family(expected)
        assert got._samples is None
        assert got.samples == expected.samples
        assert writer.family(got) == TextWriter().family(expected)  # once made, from the samples
