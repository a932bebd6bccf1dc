"""The endpoint's limits and handshake checks, on an in-process app (Starlette's test client)."""

import json

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fakeai.app import create_app
from fakeai.settings import Settings


def client(**settings) -> TestClient:
    return TestClient(create_app(Settings(no_delay=True, **settings), CollectorRegistry()))


def receive_until(ws, kind: str) -> dict:
    while (message := json.loads(ws.receive_text()))["type"] != kind:
        pass
    return message


def test_token_by_header_or_query_and_refusal_without_it():
    with client(stream_token="s3cret") as c:
        with c.websocket_connect("/metrics/stream", headers={"Authorization": "Bearer s3cret"}) as ws:
            assert json.loads(ws.receive_text())["type"] == "historical_data"
        with c.websocket_connect("/metrics/stream?token=s3cret") as ws:
            assert json.loads(ws.receive_text())["type"] == "historical_data"
        for kwargs in ({}, {"headers": {"Authorization": "Bearer nope"}}):
            with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect("/metrics/stream", **kwargs):
                pass
            assert refused.value.code == 1008


def test_origin_allow_list():
    with client(stream_allowed_origins=("https://ok.example",)) as c:
        with c.websocket_connect("/metrics/stream", headers={"Origin": "https://ok.example"}) as ws:
            assert json.loads(ws.receive_text())["type"] == "historical_data"
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            c.websocket_connect("/metrics/stream", headers={"Origin": "https://evil.example"}),
        ):
            pass
        assert refused.value.code == 1008


def test_too_many_subscribers_get_1013():
    with client(stream_max_clients=1) as c, c.websocket_connect("/metrics/stream") as first:
        assert json.loads(first.receive_text())["type"] == "historical_data"
        with c.websocket_connect("/metrics/stream") as second, pytest.raises(WebSocketDisconnect) as closed:
            second.receive_text()
        assert closed.value.code == 1013


def test_frame_size_and_message_rate_limits_close_the_connection():
    with client(stream_max_message=100, stream_max_messages_per_second=5) as c:
        with c.websocket_connect("/metrics/stream") as ws:
            ws.receive_text()
            ws.send_text('{"type": "ping", "pad": "' + "x" * 200 + '"}')
            with pytest.raises(WebSocketDisconnect) as closed:
                receive_until(ws, "never")
            assert closed.value.code == 1009
        with c.websocket_connect("/metrics/stream") as ws:
            ws.receive_text()
            for _ in range(10):
                ws.send_text('{"type": "ping"}')
            with pytest.raises(WebSocketDisconnect) as closed:
                receive_until(ws, "never")
            assert closed.value.code == 1008


def test_binary_frames_ids_and_query_filters():
    with client() as c, c.websocket_connect("/metrics/stream?metric_type=cache&interval=2") as ws:
        first = json.loads(ws.receive_text())
        assert set(first["data"]) == {"cache"}
        ws.send_bytes(b"\x00\x01")
        assert receive_until(ws, "error")["code"] == "invalid_message"
        ws.send_text(json.dumps({"type": "ping", "id": "abc"}))
        assert receive_until(ws, "pong")["id"] == "abc"
        ws.send_text(json.dumps({"type": "subscribe", "id": 5, "filters": {"window": 99999}}))
        error = receive_until(ws, "error")
        assert error["id"] == 5 and error["code"] == "invalid_filter"
        ws.send_text(json.dumps({"type": "subscribe", "id": 6}))
        subscribed = receive_until(ws, "subscribed")
        assert subscribed["id"] == 6 and subscribed["filters"]["metric_types"] == ["cache"]
        assert subscribed["filters"]["interval"] == 2.0


def test_invalid_query_filter_gets_an_error_and_the_defaults():
    with client() as c, c.websocket_connect("/metrics/stream?interval=soon") as ws:
        messages = [json.loads(ws.receive_text()) for _ in range(2)]
    assert messages[0]["type"] == "historical_data" and len(messages[0]["data"]) == 6
    assert messages[1]["type"] == "error" and messages[1]["code"] == "invalid_filter"


def test_a_bug_in_a_subscribers_reader_is_logged_with_its_traceback_and_others_go_on(monkeypatch, caplog):
    def broken(text, client, hub):
        raise RuntimeError("boom in handle")

    with client() as c:
        with c.websocket_connect("/metrics/stream") as ws:
            ws.receive_text()
            monkeypatch.setattr("bridge.server.handle", broken)
            ws.send_text('{"type": "ping"}')
            with pytest.raises(WebSocketDisconnect):
                receive_until(ws, "never")
        monkeypatch.undo()
        with c.websocket_connect("/metrics/stream") as other:
            other.receive_text()
            other.send_text('{"type": "ping"}')
            assert receive_until(other, "pong")["type"] == "pong"
    failures = [r for r in caplog.records if r.name == "bridge" and "reader task failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "boom in handle" in str(failures[0].exc_info[1])
