"""A real Prometheus (the ``prometheus`` binary on PATH, Debian's package) scraping given targets, on a free
loopback port, stopped by its process id."""

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx
import yaml


class PrometheusNotFound(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrometheusProcess:
    """``with PrometheusProcess(["127.0.0.1:8000"], scrape_interval=1) as prometheus:`` then ``prometheus.url``.

    ``targets`` are ``host:port`` (a leading ``http://`` is dropped); ``labels`` are target labels, as
    Kubernetes service discovery would attach them (namespace, pod); ``rule_files`` are evaluated every
    scrape interval. Its data lives in ``folder`` (a temporary one, removed at exit, when none is given)."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        scrape_interval: float = 1.0,
        job: str = "fakeai",
        labels: Mapping[str, str] | None = None,
        rule_files: Sequence[Path] = (),
        folder: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.targets = [target.removeprefix("http://") for target in targets]
        self.scrape_interval = scrape_interval
        self.job = job
        self.labels = dict(labels or {})
        self.rule_files = [path.resolve() for path in rule_files]
        self.folder = folder
        self.start_timeout = start_timeout
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._temporary: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> "PrometheusProcess":
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusNotFound("prometheus not found on PATH: install Debian's 'prometheus' package")
        if self.folder is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="fakeai-prometheus-")
            self.folder = Path(self._temporary.name)
        self.folder.mkdir(parents=True, exist_ok=True)
        static: dict[str, object] = {"targets": self.targets}
        if self.labels:
            static["labels"] = self.labels
        interval = f"{self.scrape_interval:g}s"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": self.job, "static_configs": [static]}],
        }
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={self.folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited with status {self._process.returncode}")
            try:
                if httpx.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus did not become ready in {self.start_timeout:g} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> "PrometheusProcess":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
