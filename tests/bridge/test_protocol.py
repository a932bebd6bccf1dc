import math

import pytest

from bridge import protocol
from bridge.categories import METRIC_TYPES
from bridge.protocol import Filters, ProtocolError, apply, from_query, parse

ALL = frozenset(METRIC_TYPES)


def test_parse_known_messages_and_ids():
    assert parse('{"type": "ping", "id": 3}') == protocol.ClientMessage("ping", 3)
    assert parse('{"type": "subscribe", "filters": {"interval": 2}}').filters == {"interval": 2}
    assert parse('{"type": "unsubscribe", "id": "x"}').id == "x"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{nope", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('"text"', "invalid_message"),
        ('{"type": "dance"}', "unknown_type"),
        ("{}", "unknown_type"),
        ('{"type": "ping", "id": true}', "invalid_message"),
        ('{"type": "ping", "id": {"a": 1}}', "invalid_message"),
        ('{"type": "subscribe", "filters": [1]}', "invalid_filter"),
    ],
)
def test_bad_frames_have_stable_codes(frame, code):
    with pytest.raises(ProtocolError) as error:
        parse(frame)
    assert error.value.code == code and error.value.message


def test_metric_type_first_value_replaces_all_then_adds_and_all_resets():
    f = apply(Filters(), {"metric_type": "latency"}, min_interval=0.5)
    assert f.metric_types == {"latency"}
    f = apply(f, {"metric_type": ["cache"]}, min_interval=0.5)
    assert f.metric_types == {"latency", "cache"}
    assert apply(f, {"metric_type": "all"}, min_interval=0.5).metric_types == ALL


def test_endpoint_and_model_filters_add_up():
    f = apply(Filters(), {"endpoint": "/a", "model": ["m1", "m2"]}, min_interval=0.5)
    f = apply(f, {"endpoint": ["/b"]}, min_interval=0.5)
    assert f.endpoints == {"/a", "/b"} and f.models == {"m1", "m2"}


@pytest.mark.parametrize(
    "changes",
    [
        {"colour": "red"},
        {"interval": 0.1},
        {"interval": 4000},
        {"interval": "2"},
        {"interval": True},
        {"interval": math.nan},
        {"window": 0},
        {"metric_type": "speed"},
        {"endpoint": 3},
        {"model": ["ok", 5]},
        {"endpoint": ["x"] * 65},
        {"interval": 2, "window": -1},  # one bad part: nothing applies
    ],
)
def test_invalid_filters_change_nothing(changes):
    before = Filters(interval=3.0)
    with pytest.raises(ProtocolError) as error:
        apply(before, changes, min_interval=0.5)
    assert error.value.code == "invalid_filter"


def test_query_parameters_are_an_initial_subscribe():
    f = from_query({"metric_type": ["latency"], "interval": ["2"], "token": ["secret"]}, Filters(), min_interval=0.5)
    assert f.metric_types == {"latency"} and f.interval == 2.0
    with pytest.raises(ProtocolError):
        from_query({"interval": ["soon"]}, Filters(), min_interval=0.5)


def test_describe_lists_sorted_and_all():
    f = Filters(endpoints=frozenset({"/b", "/a"}))
    assert f.describe() == {
        "endpoints": ["/a", "/b"],
        "models": [],
        "metric_types": ["all"],
        "interval": 1.0,
        "window": 10.0,
    }


def test_replies_echo_the_id_and_never_carry_nan():
    assert '"id":9' in protocol.reply("pong", 1.0, 9)
    assert '"id"' not in protocol.reply("pong", 1.0)
    with pytest.raises(ValueError):
        protocol.dumps({"x": math.nan})
