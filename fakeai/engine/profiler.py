"""The engine steps between ``POST /start_profile`` and ``POST /stop_profile``, as Chrome trace events.

vLLM's profiler writes a torch trace of its workers into the profiler directory; fakeai has no kernels to
trace, so what it records is what its engine does: one complete event ("ph": "X") per engine step, with
the step's batch size, prefill and decode tokens and the preemptions it made. The file opens in Perfetto
or chrome://tracing. One trace per process: with ``--workers`` every worker writes its own, as each of
vLLM's workers does.
"""

import json
import os
import socket
import time
from pathlib import Path
from typing import Any


class StepTrace:
    """Shared by the engines of one process; records only between ``start`` and ``stop``."""

    def __init__(self) -> None:
        self.recording = False
        self._events: list[dict[str, Any]] = []
        self._threads: dict[tuple[str, int], int] = {}
        self._wall_offset = 0.0

    def start(self) -> None:
        """Begin a new trace (a trace in progress starts over)."""
        self._events, self._threads = [], {}
        self._wall_offset = time.time() - time.monotonic()
        self.recording = True

    def step(
        self,
        model: str,
        engine: int,
        *,
        start: float,
        end: float,
        batch: int,
        prefill_tokens: int,
        decode_tokens: int,
        preemptions: int = 0,
    ) -> None:
        """One engine step, ``start`` and ``end`` as ``time.monotonic()`` readings."""
        thread = self._threads.get((model, engine))
        if thread is None:
            thread = self._threads[model, engine] = len(self._threads) + 1
            name = {"name": f"{model} (engine {engine})"}
            self._events.append({"name": "thread_name", "ph": "M", "pid": os.getpid(), "tid": thread, "args": name})
        self._events.append(
            {
                "name": "engine_step",
                "cat": "engine",
                "ph": "X",
                "ts": round((start + self._wall_offset) * 1e6, 3),
                "dur": round(max(end - start, 0.0) * 1e6, 3),
                "pid": os.getpid(),
                "tid": thread,
                "args": {
                    "batch_size": batch,
                    "prefill_tokens": prefill_tokens,
                    "decode_tokens": decode_tokens,
                    "preemptions": preemptions,
                },
            }
        )

    def stop(self) -> list[dict[str, Any]]:
        """End the trace; its events."""
        self.recording = False
        events, self._events = self._events, []
        return events


def write_trace(folder: Path, events: list[dict[str, Any]]) -> Path:
    """The trace file, named as torch's profiler names one: ``HOST_PID.MILLISECONDS.pt.trace.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{socket.gethostname()}_{os.getpid()}.{int(time.time() * 1000)}.pt.trace.json"
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}), encoding="utf-8")
    return path
