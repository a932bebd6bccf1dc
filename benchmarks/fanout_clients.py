"""Load generator for stream_fanout.py (its own process): N subscribers, prints lag figures as JSON.

Each subscriber is an asyncio protocol around websockets' sans-I/O client, stamping a frame's arrival
in ``data_received``: with a thousand subscribers in one process, the high-level client's per-message
work would queue the last frames of a burst and be measured as the server's lag.

    python benchmarks/fanout_clients.py URL SUBSCRIBERS SETS SECONDS [vary=windows|categories|selections] [deflate]

With ``deflate`` every subscriber offers permessage-deflate as a browser does (``client_max_window_bits``
and nothing else) and reads compressed frames. ``vary`` says what the distinct sets differ in
(``stream_deliver.filters_of``; windows unless said).
"""

import asyncio
import json
import sys
import time

from stream_deliver import filters_of
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

UPDATE = b'{"type":"metrics_update","timestamp":'
WARM_UP_UPDATES = 3


class Subscriber(asyncio.Protocol):
    def __init__(
        self, url: str, subscribe: bytes | None, lags: list[float], opened: asyncio.Future, deflate: bool
    ) -> None:
        # What a browser offers: permessage-deflate; client_max_window_bits.
        offers = [ClientPerMessageDeflateFactory(client_max_window_bits=True)] if deflate else None
        self.ws = ClientProtocol(parse_uri(url), extensions=offers, max_size=None)
        self.subscribe, self.lags, self.opened = subscribe, lags, opened
        self.measuring_from = self.measuring_until = float("inf")
        self.updates = 0
        self.first_max: float | None = None  # the largest lag before measuring: the server's first ticks

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def data_received(self, data: bytes) -> None:
        received = time.time()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if not isinstance(event, Frame):  # the handshake response
                if self.subscribe is not None:
                    self.ws.send_text(self.subscribe)
                    self._flush()
                if not self.opened.done():
                    self.opened.set_result(None)
            elif event.opcode is Opcode.TEXT and event.data.startswith(UPDATE):
                start = len(UPDATE)
                lag = received - float(event.data[start : event.data.index(b",", start)])
                self.updates += 1
                if self.measuring_from <= received <= self.measuring_until:
                    self.lags.append(lag)
                elif received < self.measuring_from:
                    self.first_max = lag if self.first_max is None else max(lag, self.first_max)
        self._flush()


async def main() -> None:
    # ``sets`` distinct filter sets (windows of 10 s, 11 s, ... unless ``vary`` says otherwise) among
    # ``count`` subscribers, round robin; one set is the default filters.
    url, count, sets, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    options = sys.argv[5:]
    deflate = "deflate" in options
    vary = next((option.split("=", 1)[1] for option in options if option.startswith("vary=")), "windows")
    kinds = [_json_filters(filters) for filters in filters_of("distinct", sets, vary)] if sets > 1 else [{}]
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    subscribers = []
    for i in range(count):
        filters = {"interval": 1.0, **kinds[i % len(kinds)]}
        opened = loop.create_future()
        message = json.dumps({"type": "subscribe", "filters": filters}).encode()
        _, protocol = await loop.create_connection(
            lambda m=message, o=opened: Subscriber(url, m, lags, o, deflate), uri.host, uri.port
        )
        await opened
        subscribers.append(protocol)
    # Measure the steady state: from the time every subscriber has had WARM_UP_UPDATES updates. The first
    # ticks after a burst of new filter sets are the server's warm-up (each new window's start summed
    # once, ~30 ms for a hundred): reported apart, as ``first_max``.
    deadline = time.time() + 60.0
    while min(protocol.updates for protocol in subscribers) < WARM_UP_UPDATES and time.time() < deadline:
        await asyncio.sleep(0.05)
    start = time.time()
    for protocol in subscribers:
        protocol.measuring_from, protocol.measuring_until = start, start + duration
    print(json.dumps({"event": "ready", "at": start}), flush=True)
    await asyncio.sleep(duration + 0.5)
    lags.sort()
    print(
        json.dumps(
            {
                "event": "done",
                "updates": len(lags),
                "p50": lags[len(lags) // 2] if lags else None,
                "p99": lags[int(len(lags) * 0.99)] if lags else None,
                "first_max": max((p.first_max for p in subscribers if p.first_max is not None), default=None),
            }
        ),
        flush=True,
    )
    for protocol in subscribers:
        protocol.transport.close()


WIRE_NAMES = {"endpoints": "endpoint", "models": "model", "metric_types": "metric_type"}


def _json_filters(filters: dict) -> dict:
    """``Filters``' fields as a subscribe message names them (docs/METRICS_STREAMING.md): sets as lists,
    an empty one (everything) left out."""
    return {
        WIRE_NAMES.get(key, key): sorted(value) if isinstance(value, frozenset) else value
        for key, value in filters.items()
        if value or not isinstance(value, frozenset)
    }


if __name__ == "__main__":
    asyncio.run(main())
