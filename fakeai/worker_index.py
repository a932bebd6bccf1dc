"""Which of the ``--workers`` processes this is: a number from 0 that no other live worker holds, so each
worker's engines get indices of their own (``engine`` labels never collide across processes).

Each worker takes an exclusive ``flock`` on the first free ``worker-N.lock`` in the multiprocess folder
and keeps it for its life. A worker that dies loses its lock with its process (the kernel releases it),
so a replacement takes the freed number.
"""

import fcntl
import os
from pathlib import Path

_held: list[int] = []  # the lock's descriptor, open for the life of the process


def claim(folder: Path, workers: int) -> int:
    """This process's worker number, from 0 to ``workers`` - 1."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(workers):
        fd = os.open(folder / f"worker-{number}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held.append(fd)
        return number
    raise RuntimeError(f"all {workers} worker numbers are taken in {folder}")
