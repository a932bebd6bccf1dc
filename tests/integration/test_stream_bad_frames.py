"""10,000 random frames on one connection: error replies or the documented close, never a crash, and
another subscriber keeps receiving updates throughout."""

import contextlib
import json
import threading
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

MAX_MESSAGE = 4096
REPLIES = {"error", "subscribed", "unsubscribed", "pong"}

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
filters = st.dictionaries(
    st.sampled_from(["endpoint", "model", "metric_type", "interval", "window", "colour"]),
    values | st.sampled_from(["latency", "all", "/v1/completions", "bogus"]) | st.floats(0, 5000),
    max_size=4,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "ping", "pong", "", "SUBSCRIBE"]) | values},
    optional={"filters": filters | values, "id": values, "extra": values},
)
ordinary = st.one_of(
    messages.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=300),
    values.map(json.dumps),
    st.text(min_size=10, max_size=40).map(lambda s: (s * 110)[:MAX_MESSAGE]),  # long, within the limit
)
# Over the limit: closed with 1009, then the test opens a new connection.
frames = st.one_of(ordinary, ordinary, ordinary, st.just("x" * (MAX_MESSAGE + 1)))
BATCH, BATCHES = 50, 200  # drawn as lists: hypothesis generates a list far faster than 50 examples


class Watcher(threading.Thread):
    """A well-behaved subscriber: records when each update arrives."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.arrivals, self.stop = url, [], threading.Event()

    def run(self) -> None:
        with connect(self.url) as ws:
            ws.send('{"type": "subscribe", "filters": {"interval": 0.5}}')
            while not self.stop.is_set():
                message = json.loads(ws.recv(timeout=10))
                if message["type"] == "metrics_update":
                    self.arrivals.append(time.monotonic())


# websockets draws its frame masks from the random module; hypothesis warns about any use of it while
# a test runs, though here it has nothing to do with generating the frames.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
def test_random_frames_get_errors_or_the_documented_close(start_server):
    server = start_server(
        "--no-delay",
        "--stream-max-message",
        str(MAX_MESSAGE),
        "--stream-history-seconds",
        "2",
        "--stream-max-messages-per-second",
        "1000000",
    )
    url = server.url.replace("http://", "ws://") + "/metrics/stream"
    watcher = Watcher(url)
    watcher.start()
    state = {"ws": None, "closes": 0, "replies": 0, "sent": 0}
    connections = contextlib.ExitStack()

    def fresh() -> None:
        state["ws"] = connections.enter_context(connect(url, max_size=None))
        assert json.loads(state["ws"].recv(timeout=10))["type"] == "historical_data"

    fresh()

    @settings(
        max_examples=BATCHES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(st.lists(frames, min_size=BATCH, max_size=BATCH))
    def batch(batch_frames):
        for frame in batch_frames:
            one_frame(frame)

    def one_frame(frame):
        ws = state["ws"]
        ws.send(frame)
        state["sent"] += 1
        try:
            while True:
                message = json.loads(ws.recv(timeout=10))
                if message["type"] in REPLIES:
                    break
            state["replies"] += 1
            if isinstance(frame, bytes):
                assert message["type"] == "error" and message["code"] == "invalid_message"
            if message["type"] == "error":
                assert message["code"] in {"invalid_json", "invalid_message", "unknown_type", "invalid_filter"}
                assert isinstance(message["message"], str) and message["message"]
        except ConnectionClosed as closed:
            assert len(frame) > MAX_MESSAGE and closed.rcvd.code == 1009, (frame[:80], closed)
            state["closes"] += 1
            fresh()

    start = time.monotonic()
    batch()
    elapsed = time.monotonic() - start
    state["ws"].send('{"type": "ping", "id": "still-there"}')
    while (reply := json.loads(state["ws"].recv(timeout=10)))["type"] != "pong":
        pass
    watcher.stop.set()
    watcher.join(timeout=15)
    connections.close()
    assert reply["id"] == "still-there"
    assert state["sent"] >= 10_000 and state["replies"] + state["closes"] == state["sent"] and state["closes"] >= 1
    assert httpx.get(server.url + "/health").status_code == 200
    gaps = [b - a for a, b in zip(watcher.arrivals, watcher.arrivals[1:], strict=False)]
    assert len(watcher.arrivals) >= 0.8 * elapsed / 0.5 and max(gaps) < 2.0, (len(watcher.arrivals), elapsed)
