"""fakeai.tools.dashboards without a Prometheus: loading, Grafana's interpolation, value mappings."""

from pathlib import Path

import pytest

from fakeai.tools.dashboards import ALL, Dashboard, TimeRange, Variable, display_text, interpolate

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm" / "grafana"
SPAN = TimeRange(seconds=600, scrape_interval=5)


def variable(name: str, *, multi: bool = False, include_all: bool = False, all_value=None, options=()) -> Variable:
    return Variable(name, "query", "", multi, include_all, all_value, tuple(options))


def test_the_service_status_board_loads_with_its_targets_and_variables():
    board = Dashboard.load(DATA / "vllm_service_status.json")
    assert board.title == "vLLM / Service Status"
    assert len(board.targets) == 10  # ten panels with one target each; the repeated row has none
    assert sum(t.instant for t in board.targets) == 5  # the five stat panels
    assert [v.name for v in board.variables] == ["datasource", "job", "model_name", "instance"]
    status = board.panel("Status")
    assert [display_text(status, value) for value in (0, 1, 2)] == ["Down", "Sleeping", "Online"]
    assert display_text(status, 3) is None


def test_interval_variables_follow_the_scrape_interval_and_the_range():
    assert interpolate("rate(x[$__rate_interval])", [], {}, SPAN) == "rate(x[20s])"  # 4 x 5 s
    assert interpolate("x[$__range] $__range_s ${__interval}", [], {}, SPAN) == "x[600s] 600 5s"
    wide = TimeRange(seconds=6 * 3600, scrape_interval=15)  # 108 s a point: interval + scrape
    assert interpolate("$__rate_interval", [], {}, wide) == "123s"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [("$model", "a\\\\.b"), ("${model}", "a\\\\.b"), ("[[model]]", "a\\\\.b"), ("${model:raw}", "a.b")],
)
def test_every_spelling_of_a_variable_is_replaced(spelling, expected):
    model = variable("model", multi=True)
    assert interpolate(f'x{{m=~"{spelling}"}}', [model], {"model": ["a.b"]}, SPAN) == f'x{{m=~"{expected}"}}'


def test_several_values_and_all_become_a_regex_alternation_or_the_all_value():
    model = variable("model", multi=True, include_all=True, options=("m-1", "m.2"))
    assert interpolate("$model", [model], {"model": ["m-1", "m.2"]}, SPAN) == "(m-1|m\\\\.2)"
    assert interpolate("$model", [model], {"model": [ALL]}, SPAN) == "(m-1|m\\\\.2)"
    star = variable("job", include_all=True, all_value=".*", options=("a", "b"))
    assert interpolate("$job", [star], {"job": [ALL]}, SPAN) == ".*"
    plain = variable("name")
    assert interpolate("$name", [plain], {"name": ["it's"]}, SPAN) == "it\\\\'s"
    assert interpolate("$unknown and $__name__", [plain], {"name": ["x"]}, SPAN) == "$unknown and $__name__"
