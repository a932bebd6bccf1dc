"""The series selectors check-dashboards finds in PromQL expressions."""

import pytest

from fakeai.tools.promql import Selector, metric_names, selectors


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", ["up"]),
        ('rate(x_total{job="a", le=~"1|2"}[5m])', ['x_total{job="a", le=~"1|2"}']),
        (
            "histogram_quantile(0.99, sum by (le, model_name) "
            '(rate(vllm:e2e_request_latency_seconds_bucket{model_name="$m"}[$__rate_interval])))',
            ['vllm:e2e_request_latency_seconds_bucket{model_name="$m"}'],
        ),
        ("sum(a) by (job) / ignoring(code) group_left(x) sum without (i) (b offset 1h30m) > bool 0.5", ["a", "b"]),
        ('label_replace(up{a="}"}, "dst", "$1", "src", "(.*)") and on() vector(1)', ['up{a="}"}']),
        (
            '{__name__=~"fakeai_.*"} unless absent(c) or d @ start() + 1e3 * 0x1F - Inf',
            ['{__name__=~"fakeai_.*"}', "c", "d"],
        ),
        ("sum(rate(x[5m:30s])) # a comment naming y", ["x"]),
        ("count(present_over_time(tgi_queue_size[1m])) >= 1", ["tgi_queue_size"]),
    ],
)
def test_selectors_are_found_and_nothing_else(expr, expected):
    assert [str(s) for s in selectors(expr)] == expected


def test_metric_names_are_unique_and_in_order():
    expr = "a / (a + b{x='1'}) + {__name__='z'}"
    assert metric_names(expr) == ["a", "b"]
    assert selectors("b{x='1'}") == [Selector("b", "{x='1'}")]
