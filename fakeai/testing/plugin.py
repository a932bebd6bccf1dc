"""The fakeai pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:
- ``fakeai_server``: a real fakeai server in a child process on a free loopback port, stopped at
  teardown. Settings come from ``@pytest.mark.fakeai("--no-delay", error_rate=0.1)`` (flags, or
  keyword arguments written as flags) or from an indirect parameter (a list of flags or a dict).
- ``fakeai_client``: an ``openai.OpenAI`` client bound to that server.
- ``fakeai_metrics``: ``Metrics`` on that server's /metrics: ``value``, ``histogram``, ``delta()``.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from fakeai.server_process import ServerProcess
from fakeai.testing.metrics import Metrics


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fakeai(*flags, **settings): settings of the fakeai_server fixture")


def _flags(args: Any, kwargs: dict[str, Any]) -> list[str]:
    flags = [str(a) for a in (args if isinstance(args, list | tuple) else [args])]
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False and value is not None:
            flags += [flag, ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)]
    return flags


@pytest.fixture
def fakeai_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    flags: list[str] = []
    marker = request.node.get_closest_marker("fakeai")
    if marker is not None:
        flags += _flags(list(marker.args), dict(marker.kwargs))
    param = getattr(request, "param", None)
    if isinstance(param, dict):
        flags += _flags([], param)
    elif param is not None:
        flags += _flags(param, {})
    with ServerProcess(flags) as server:
        yield server


@pytest.fixture
def fakeai_client(fakeai_server: ServerProcess) -> Any:
    import openai

    client = openai.OpenAI(base_url=fakeai_server.url + "/v1", api_key="fakeai", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def fakeai_metrics(fakeai_server: ServerProcess) -> Metrics:
    return Metrics.of_server(fakeai_server.url)
