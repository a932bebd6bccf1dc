import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import yaml

from fakeai.testing import ServerProcess


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Start real fakeai servers (``start_server("--no-delay")``); all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def run_prometheus(tmp_path) -> Iterator[Callable[..., str]]:
    """Start Debian's Prometheus scraping ``target`` (``host:port``, or several) every ``scrape_interval`` s;
    returns its URL. Every instance started is stopped at teardown, by its process id."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus not found: install Debian's 'prometheus' package (.ci/run does)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        target: str | list[str],
        *,
        scrape_interval: float = 1.0,
        job: str = "fakeai",
        labels: dict[str, str] | None = None,
    ) -> str:
        """``labels``: target labels, as Kubernetes service discovery would attach (namespace, pod)."""
        targets = [target] if isinstance(target, str) else target
        static: dict[str, object] = {"targets": [t.removeprefix("http://") for t in targets]}
        if labels:
            static["labels"] = labels
        folder = tmp_path / f"prometheus-{len(processes)}"
        folder.mkdir()
        config = {
            "global": {"scrape_interval": f"{scrape_interval:g}s", "evaluation_interval": f"{scrape_interval:g}s"},
            "scrape_configs": [{"job_name": job, "static_configs": [static]}],
        }
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                    return url
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
