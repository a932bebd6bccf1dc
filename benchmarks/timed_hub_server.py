"""``python -m fakeai ...`` writing, for each tick of its metrics stream, when the hub posted each part of
the tick's updates, to the file ``$FAKEAI_POST_TIMES`` (a JSON line a tick). For ``stream_fanout.py
--post-times``: a subscriber's lag is the time until its update is posted (the hub's computing, and the
turns it gives serving meanwhile) plus the time until it is sent and read; this tells the two apart.
The wrapping costs a few microseconds a part: never a figure to quote as fakeai's own lag.

    FAKEAI_POST_TIMES=FILE python benchmarks/timed_hub_server.py server --port 8000 --no-delay

A line: ``{"clients": N, "parts": [[seconds after the update's timestamp, subscribers posted], ...]}``.
"""

import json
import os
import runpy
import sys
import time
from typing import Any


def time_the_posts(path: str) -> None:
    import bridge.hub  # from the checkout first on ``sys.path`` (``common.background``'s tree)

    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the server's whole life
    hub = bridge.hub.Hub
    post, deliver = hub._post, hub.deliver
    parts: list[list[float]] = []

    def timed_post(self: Any, updates: list, now: float, slack: float) -> None:
        post(self, updates, now, slack)
        parts.append([time.time() - now, sum(len(clients) for _, clients, _ in updates)])

    async def timed_deliver(self: Any, now: float) -> int:
        parts.clear()
        groups = await deliver(self, now)
        out.write(json.dumps({"clients": len(self.clients), "parts": parts}) + "\n")
        return groups

    hub._post = timed_post  # type: ignore[method-assign]
    hub.deliver = timed_deliver  # type: ignore[method-assign]


if __name__ == "__main__":
    time_the_posts(os.environ["FAKEAI_POST_TIMES"])
    sys.argv = ["fakeai", *sys.argv[1:]]
    runpy.run_module("fakeai", run_name="__main__", alter_sys=True)
