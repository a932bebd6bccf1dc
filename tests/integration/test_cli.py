"""The command line's own settings: a given --port is where it serves, --log-level reaches uvicorn."""

import socket

import httpx

from fakeai.testing import ServerProcess
from fakeai.tools.prometheus_process import free_port


def test_port_host_and_debug_log_level_take_effect():
    port = free_port()
    server = ServerProcess(["--no-delay", "--log-level", "debug"])
    server.command[server.command.index("--port") + 1] = str(port)
    with server:
        assert server.url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    assert any("GET /health" in line for line in server.output)  # uvicorn's access log, on at debug


def test_env_twin_configures_the_server():
    with ServerProcess(["--no-delay"], env={"FAKEAI_MODELS": "env-model-a,env-model-b"}) as server:
        models = [m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"]]
    assert models == ["env-model-a", "env-model-b"]


def test_warning_level_keeps_the_log_quiet():
    with ServerProcess(["--no-delay", "--log-level", "warning"]) as server:
        httpx.get(server.url + "/health")
    assert not any("GET /health" in line for line in server.output)
    assert any("metrics:" in line for line in server.output)  # the banner still prints


def test_host_takes_effect():
    with ServerProcess(["--no-delay", "--host", "127.0.0.2"]) as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert server.url.startswith("http://127.0.0.2:")
        assert httpx.get(server.url + "/health").status_code == 200
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # bound to the given address only
