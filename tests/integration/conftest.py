from collections.abc import Callable, Iterator

import pytest

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
