"""The ``--workers`` supervisor: uvicorn's, which replaces a worker that died, plus the settling of what
that worker left in the metrics (``exporter.retirement``): its live gauges retired, its requests in flight
counted lost, the restart counted and logged at warning level."""

import logging
import os
from pathlib import Path
from socket import socket

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from exporter.retirement import Ledger

logger = logging.getLogger("fakeai.supervisor")


class Supervisor(Multiprocess):
    def __init__(self, config: Config, sockets: list[socket], folder: Path) -> None:
        super().__init__(config, sockets)
        self.folder = folder
        self.ledger = Ledger(folder, os.getpid())

    def keep_subprocess_alive(self) -> None:
        """uvicorn's check (a dead or hung worker is replaced), then every replaced worker settled."""
        before = list(self.processes)
        super().keep_subprocess_alive()
        for old, new in zip(before, self.processes, strict=False):
            if new is not old and old.pid is not None:
                self.settle(old.pid, old.exitcode, new.pid)

    def settle(self, pid: int, exitcode: int | None, replacement: int | None) -> None:
        retired = self.ledger.retire(self.folder, pid)
        how = f"signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
        logger.warning(
            "worker pid %d died without its shutdown (%s); replaced by pid %s; %d requests it had in flight are "
            "counted in fakeai_lost_requests_total",
            pid,
            how,
            replacement,
            retired.lost_total,
        )

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.ledger.close()
