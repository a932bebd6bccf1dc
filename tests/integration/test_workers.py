"""``--workers 2``: any worker's /metrics and stream show the whole server; counts restart at zero."""

import asyncio
import json
import re
from pathlib import Path

import httpx
import websockets
from stream_support import stream_url

from fakeai.testing import ServerProcess, scrape

MODEL = "Qwen/Qwen2.5-7B-Instruct"


async def send(url: str, count: int) -> None:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)  # new connections: both workers
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> int:
            async with gate:
                body = {
                    "model": MODEL,
                    "max_tokens": 3,
                    "stream": i % 3 == 0,
                    "messages": [{"role": "user", "content": f"q{i}"}],
                }
                return (await client.post("/v1/chat/completions", json=body)).status_code

        statuses = await asyncio.gather(*(one(i) for i in range(count)))
    assert set(statuses) == {200}


async def stream_totals(url: str, connections: int) -> list[float]:
    totals = []
    for _ in range(connections):
        async with websockets.connect(stream_url(url)) as ws:
            first = json.loads(await ws.recv())
            totals.append(first["data"]["cache"]["total_lookups"])
    return totals


def test_two_workers_answer_for_the_whole_server():
    with ServerProcess(["--no-delay", "--workers", "2"]) as server:
        pids = {httpx.get(server.url + "/health").json()["pid"] for _ in range(30)}
        asyncio.run(send(server.url, 1000))
        scrapes = [scrape(server.url) for _ in range(8)]
        exposition = httpx.get(server.url + "/metrics").text
        totals = asyncio.run(stream_totals(server.url, 8))
        folder = re.search(r"metric files in (\S+)\)", "".join(server.output)).group(1)
        assert Path(folder).is_dir()
    assert len(pids) == 2  # both workers served
    assert (
        "python_info" not in exposition and "process_cpu" not in exposition
    )  # dropped, as vLLM's multiprocess mode does
    for snapshot in scrapes:
        assert snapshot.value("fakeai_requests_total") == 1000
        assert snapshot.value("vllm:request_success_total") == 1000
        assert snapshot.value("fakeai_requests_running") == snapshot.value("fakeai_active_streams") == 0
        # Each worker's engine is a series of its own, numbered as data-parallel ranks are.
        engines = {
            dict(labels)["engine"]
            for name, labels in snapshot.samples
            if name == "vllm:num_requests_running" and dict(labels)["model_name"] == MODEL
        }
        assert engines == {"0", "1"}
        served = [snapshot.value("vllm:request_success_total", model_name=MODEL, engine=e) for e in ("0", "1")]
        assert sum(served) == 1000 and min(served) > 0
    assert totals == [1000] * 8  # every subscriber sees both workers, whichever holds its socket
    assert not Path(folder).exists()  # the temporary metric folder is removed at exit


def test_workers_expose_the_native_bounds_and_views_select_theirs_exactly():
    # SGLang's bounds (0.6 s among them) are recorded in the workers' files for its view, never exposed
    # under the fakeai_* names (exporter.kept_bounds), whichever worker answers.
    with ServerProcess(["--no-delay", "--workers", "2", "--metrics-dialect", "vllm,sglang"]) as server:
        asyncio.run(send(server.url, 200))
        snapshot = scrape(server.url)
    native = {
        dict(labels)["le"] for name, labels in snapshot.samples if name == "fakeai_time_to_first_token_seconds_bucket"
    }
    sglang = {
        dict(labels)["le"] for name, labels in snapshot.samples if name == "sglang:time_to_first_token_seconds_bucket"
    }
    assert "0.6" in sglang and "0.6" not in native
    assert snapshot.value("sglang:time_to_first_token_seconds_count", model_name=MODEL) == 200
    assert snapshot.value("fakeai_time_to_first_token_seconds_count", model=MODEL) == 200


def test_restart_with_the_same_folder_starts_from_zero(tmp_path):
    import shutil

    folder, crash = tmp_path / "metrics", tmp_path / "left-by-a-crash"
    with ServerProcess(["--no-delay", "--workers", "2", "--multiproc-dir", str(folder)]) as server:
        asyncio.run(send(server.url, 50))
        assert scrape(server.url).value("fakeai_requests_total") == 50
        shutil.copytree(folder, crash)  # the files as a crash would leave them
    assert not list(folder.glob("*.db"))  # a clean exit empties the folder
    for file in crash.glob("*.db"):
        shutil.copy(file, folder)
    assert list(folder.glob("*.db"))
    with ServerProcess(["--no-delay", "--workers", "2", "--multiproc-dir", str(folder)]) as server:
        assert scrape(server.url).value("fakeai_requests_total") == 0
        asyncio.run(send(server.url, 7))
        assert scrape(server.url).value("fakeai_requests_total") == 7


def test_sleep_and_wake_reach_every_worker_whichever_takes_the_call(tmp_path):
    folder = tmp_path / "metrics"
    args = ["--no-delay", "--workers", "2", "--enable-sleep-mode", "--multiproc-dir", str(folder)]
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection each call: either worker answers

    def answers(client: httpx.Client, path: str, calls: int = 30) -> tuple[set[bool], set[int]]:
        """What the workers say, asked on new connections until both have answered (the kernel may hand
        a run of connections to one worker) and at least ``calls`` times."""
        sleeping, pids = set(), set()
        for call in range(500):
            sleeping.add(client.get(path).json()["is_sleeping"])
            pids.add(client.get("/health").json()["pid"])
            if call >= calls and len(pids) == 2:
                break
        return sleeping, pids

    with ServerProcess(args) as server, httpx.Client(base_url=server.url, limits=fresh, timeout=30) as client:
        assert answers(client, "/is_sleeping")[0] == {False}
        assert client.post("/sleep?level=2").status_code == 200  # taken by one worker
        sleeping, pids = answers(client, "/is_sleeping")
        assert sleeping == {True} and len(pids) == 2  # ... and both sleep at once
        # One engine per worker, each its own series (engine 0 and 1), both asleep at level 2.
        metrics = scrape(server.url)
        for engine in ("0", "1"):
            state = {"model_name": MODEL, "engine": engine}
            awake = metrics.value("vllm:engine_sleep_state", **state, sleep_state="awake")
            discard = metrics.value("vllm:engine_sleep_state", **state, sleep_state="discard_all")
            assert (awake, discard) == (0, 1), engine
        assert client.post("/wake_up").status_code == 200
        assert answers(client, "/is_sleeping")[0] == {False}
        metrics = scrape(server.url)
        for engine in ("0", "1"):
            state = {"model_name": MODEL, "engine": engine}
            assert metrics.value("vllm:engine_sleep_state", **state, sleep_state="awake") == 1, engine
        body = {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": "after"}]}
        assert {client.post("/v1/chat/completions", json=body).status_code for _ in range(10)} == {200}
    assert not (folder / "control").exists()  # the journal does not outlive the server


def test_every_worker_writes_its_own_profile_trace(tmp_path):
    traces = tmp_path / "traces"
    with ServerProcess(["--no-delay", "--workers", "2", "--profile-dir", str(traces)]) as server:
        before = scrape(server.url).value("vllm:iteration_tokens_total_count")
        assert httpx.post(server.url + "/start_profile").status_code == 200
        asyncio.run(send(server.url, 60))
        assert httpx.post(server.url + "/stop_profile").status_code == 200
        after = scrape(server.url).value("vllm:iteration_tokens_total_count")
    files = sorted(traces.glob("*.pt.trace.json"))
    assert len(files) == 2  # one per worker, whichever took the call
    steps = [e for f in files for e in json.loads(f.read_text())["traceEvents"] if e["ph"] == "X"]
    assert len(steps) == after - before > 0
    assert len({e["pid"] for e in steps}) == 2
