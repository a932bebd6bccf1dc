import shutil
from collections.abc import Callable, Iterator

import pytest

from fakeai.testing import ServerProcess
from fakeai.tools.prometheus_process import PrometheusProcess


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
    started: list[PrometheusProcess] = []

    def start(
        target: str | list[str],
        *,
        scrape_interval: float = 1.0,
        job: str = "fakeai",
        labels: dict[str, str] | None = None,
    ) -> str:
        """``labels``: target labels, as Kubernetes service discovery would attach (namespace, pod)."""
        targets = [target] if isinstance(target, str) else target
        folder = tmp_path / f"prometheus-{len(started)}"
        process = PrometheusProcess(targets, scrape_interval=scrape_interval, job=job, labels=labels, folder=folder)
        started.append(process)
        return process.start().url

    yield start
    for process in started:
        process.stop()
