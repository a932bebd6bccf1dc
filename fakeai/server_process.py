"""A real ``python -m fakeai server`` in a child process, on a free loopback port."""

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

_URL = re.compile(r"API:\s+(http://\S+)/v1")


class ServerProcess:
    """Start with ``with ServerProcess(["--no-delay"]) as server:``; ``server.url`` is the base URL.

    The server binds port 0 on 127.0.0.1, prints its real address in the banner, and is stopped by
    its process id on exit (SIGTERM, then SIGKILL after ``stop_timeout``).
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        python: str = sys.executable,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.command = [python, "-m", "fakeai", "server", "--host", "127.0.0.1", "--port", "0", *args]
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.output: list[str] = []
        self.url = ""
        self._process: subprocess.Popen[str] | None = None
        self._found = threading.Event()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def _pump(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line)
            if not self.url and (match := _URL.search(line)):
                self.url = match.group(1)
                self._found.set()
        self._found.set()  # the process ended; start() reports it

    def start(self) -> "ServerProcess":
        self._process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not self.url:
            if not self._found.wait(timeout=max(deadline - time.monotonic(), 0.0)) or (
                not self.url and self._process.poll() is not None
            ):
                self.stop()
                raise RuntimeError("fakeai server did not start:\n" + "".join(self.output))
        self._wait_healthy(deadline)
        return self

    def _wait_healthy(self, deadline: float) -> None:
        import httpx

        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("fakeai server never became healthy:\n" + "".join(self.output))

    def stop(self) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
