"""Runtime changes (sleep and wake today) that every worker applies, whichever took the request.

In one process a change is applied at once. With ``--workers`` the workers share a journal: the worker
that takes an admin request appends the change as one JSON line (``O_APPEND``: lines from several
workers never interleave), and every worker tails the journal, applies each line in order, and writes
how far it got to an acknowledgement file of its own. The request is answered once every live worker
has applied the change, so a client that asks any worker afterwards sees it. A worker that starts
later (or is respawned) replays the journal from its first line, so it comes up in the same state.

The journal lives beside the workers' metric files, which are emptied at every start: a change never
outlives the server that made it.
"""

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("fakeai")
Change = dict[str, Any]
Apply = Callable[[Change], Awaitable[None]]


class LocalControl:
    """One process: a change is applied when it is submitted."""

    def __init__(self, apply: Apply) -> None:
        self.apply = apply

    async def submit(self, change: Change) -> None:
        await self.apply(change)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class SharedControl:
    """Several workers: a journal every worker tails, and one acknowledgement file per worker."""

    POLL_SECONDS = 0.05
    ACK_TIMEOUT_SECONDS = 60.0

    def __init__(self, folder: Path, apply: Apply, workers: int) -> None:
        self.folder = folder
        self.apply = apply
        self.workers = workers
        self.journal = folder / "journal.jsonl"
        self.ack = folder / f"ack-{os.getpid()}"
        self.applied = 0
        """Bytes of the journal this worker has applied."""
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.journal.touch()
        self._task = asyncio.get_running_loop().create_task(self._tail(), name="fakeai-control")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.ack.unlink(missing_ok=True)

    async def submit(self, change: Change) -> None:
        """Append ``change`` and return once every live worker has applied it."""
        with open(self.journal, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(change, separators=(",", ":")) + "\n")
            upto = journal.tell()  # the end of this line (and of any line appended before it)
        async with self._progress:
            await self._progress.wait_for(lambda: self.applied >= upto)
        deadline = time.monotonic() + self.ACK_TIMEOUT_SECONDS
        while (done := self._workers_at(upto)) < self.workers:
            if time.monotonic() > deadline:
                log.warning("%d of %d workers applied %s in time", done, self.workers, change)
                return
            await asyncio.sleep(self.POLL_SECONDS / 2)

    def _workers_at(self, upto: int) -> int:
        """Live workers that have applied the journal up to ``upto`` bytes."""
        count = 0
        for ack in self.folder.glob("ack-*"):
            pid = int(ack.name.removeprefix("ack-"))
            with contextlib.suppress(OSError, ValueError):
                os.kill(pid, 0)  # a worker that died left its file behind: not counted
                if int(ack.read_text() or 0) >= upto:
                    count += 1
        return count

    async def _tail(self) -> None:
        while True:
            try:
                await self._catch_up()
            except OSError:
                log.exception("reading the runtime journal failed")
            await asyncio.sleep(self.POLL_SECONDS)

    async def _catch_up(self) -> None:
        if self.journal.stat().st_size <= self.applied:
            return
        with open(self.journal, "rb") as journal:
            journal.seek(self.applied)
            data = journal.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        for line in complete.splitlines(keepends=True):
            try:
                await self.apply(json.loads(line))
            except Exception:  # one bad change must not stop the ones after it
                log.exception("skipping a runtime change that failed: %r", line[:200])
            self.applied += len(line)
            async with self._progress:
                self._progress.notify_all()
        scratch = self.folder / f".{self.ack.name}.tmp"
        scratch.write_text(str(self.applied))
        os.replace(scratch, self.ack)  # readers see the old count or the new one, never half of it
