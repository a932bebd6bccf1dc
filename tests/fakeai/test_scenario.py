"""Scenario files: parsed and checked whole (one-line errors with file, line and key; exit code 2 from
the CLI), then run phase by phase: settings changes, the server going down and coming back."""

import asyncio
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.metrics import ServerMetrics
from fakeai.__main__ import main
from fakeai.scenario import ScenarioError, parse
from fakeai.scenario_runner import ScenarioRunner, check
from fakeai.settings import Settings

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TOKEN = {"Authorization": "Bearer s3cret"}
TRAFFIC = "name: x\nphases:\n  - name: a\n    duration: 1\n    traffic:\n"
EXPECT = "name: x\nphases:\n  - {name: a, duration: 10}\n  - {name: b, duration: 10}\nexpect:\n"
GOOD = "name: outage\nphases:\n  - name: slow\n    duration: 500ms\n    config: {itl_ms: 100}\n"

MALFORMED = [
    ("name: x\nphases:\n  - name: a\n    duration: -3\n", "f.yaml:4: phases.0.duration: a duration must be positive"),
    ("name: x\nphases:\n  - name: a\n    duration: soon\n", "f.yaml:4: phases.0.duration: expected a duration"),
    ("name: x\nphases:\n  - name: a\n    durations: 3\n", "f.yaml:4: phases.0.durations: Extra inputs"),
    ("name: x\nphases:\n  - name: a\n    duration: 1\n    down: maybe\n", "f.yaml:5: phases.0.down: Input should"),
    ("name: x\nphases: []\n", "f.yaml:2: phases: List should have at least 1 item"),
    ("name: x\n", "f.yaml:1: phases: Field required"),
    ("phases:\n  - name: a\n    duration: 1\n", "f.yaml:1: name: Field required"),
    ("name: x\ncolour: blue\nphases:\n  - {name: a, duration: 1}\n", "f.yaml:2: colour: Extra inputs"),
    ("name: x\nphases:\n  - {name: a, duration: 1}\n  - {name: a, duration: 2}\n", "phase names must be distinct"),
    ("name: x\nphases: [\n", "f.yaml:3: not valid YAML"),
    ("- just\n- a list\n", "f.yaml:1: expected a mapping"),
    ("name: x\nphases:\n  - name: a\n    duration: 1\n    config: 5\n", "f.yaml:5: phases.0.config: Input should"),
    # A phase's traffic: each form of a wrong rate, length, weight or share, named as the file spells it.
    (TRAFFIC + "      rate: 0\n", "f.yaml:6: phases.0.traffic.rate: a rate must be above 0"),
    (TRAFFIC + "      rate: lots\n", "f.yaml:6: phases.0.traffic.rate: Input should be a valid number"),
    (TRAFFIC + "      rate:\n        from: 1\n        too: 5\n", "f.yaml:8: phases.0.traffic.rate.too: Extra inputs"),
    (TRAFFIC + "      rate: {from: 0, to: 0}\n", "f.yaml:6: phases.0.traffic.rate: a ramp from 0 to 0 sends nothing"),
    (TRAFFIC + "      rate: 5\n      arrivals: bursty\n", "f.yaml:7: phases.0.traffic.arrivals: Input should be"),
    (
        TRAFFIC + "      rate: 5\n      prompt_tokens:\n        min: 9\n        max: 2\n",
        "f.yaml:8: phases.0.traffic.prompt_tokens: min must not exceed max",
    ),
    (TRAFFIC + "      rate: 5\n      output_tokens: 0\n", "f.yaml:7: phases.0.traffic.output_tokens: a length must be"),
    (TRAFFIC + "      rate: 5\n      stream: 1.5\n", "f.yaml:7: phases.0.traffic.stream: Input should be less than"),
    (
        TRAFFIC + "      rate: 5\n      endpoints: {embeddings: 1}\n",
        "phases.0.traffic.endpoints.embeddings: Input should",
    ),
    (TRAFFIC + "      rate: 5\n      models: {a: 0}\n", "f.yaml:7: phases.0.traffic.models: weights must be"),
    (TRAFFIC + "      rate: 5\n      rps: 5\n", "f.yaml:7: phases.0.traffic.rps: Extra inputs"),
    # Expectations: a phase the file does not have, two kinds at once, PromQL that cannot parse, a window
    # longer than its phase, a resolution with no firing before it, a name no rule could have.
    (EXPECT + "  - {alert: A, phase: c}\n", "f.yaml:6: expect.0.phase: no phase named 'c'; phases: a, b"),
    (EXPECT + "  - {alert: A, promql: up, phase: a}\n", "f.yaml:6: expect.0: give exactly one of alert, resolved"),
    (
        EXPECT + "  - promql: sum(rate(x[5m])\n    phase: a\n",
        "f.yaml:6: expect.0.promql: not valid PromQL: unclosed '('",
    ),
    (EXPECT + "  - {promql: 'up{job=\"a}', phase: a}\n", 'f.yaml:6: expect.0.promql: not valid PromQL: unclosed "'),
    (EXPECT + "  - {alert: A, phase: a, within: 1m}\n", "f.yaml:6: expect.0.within: longer than phase 'a' (10 s)"),
    (EXPECT + "  - {resolved: A, phase: b}\n", "f.yaml:6: expect.0.resolved: A is not expected to fire in an earlier"),
    (EXPECT + "  - {alert: High Errors, phase: a}\n", "f.yaml:6: expect.0.alert: String should match pattern"),
]


@pytest.mark.parametrize(("text", "error"), MALFORMED)
def test_a_malformed_file_gives_one_line_with_its_location_and_exit_code_2(text, error, tmp_path, capsys):
    with pytest.raises(ScenarioError) as raised:
        parse(text, "f.yaml")
    assert error in str(raised.value) and "\n" not in str(raised.value)
    # The server refuses to start on it: the same line, naming the file, and exit code 2.
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert main(["server", "--scenario", str(path)]) == 2
    printed = capsys.readouterr().err.strip().splitlines()
    assert printed == [f"fakeai server: error: {str(raised.value).replace('f.yaml', str(path), 1)}"]


def test_traffic_for_a_model_the_server_does_not_serve_is_refused_with_its_location():
    text = TRAFFIC + "      rate: 5\n      models:\n        " + MODEL + ": 1\n        gpt-9: 2\n"
    scenario = parse(text, "f.yaml")
    with pytest.raises(ScenarioError) as raised:
        check(scenario, Settings())
    assert str(raised.value) == "f.yaml:9: phases.0.traffic.models.gpt-9: not a model this server serves: gpt-9"
    check(parse(text.replace("gpt-9", "meta-llama/Llama-3.1-70B-Instruct"), "f.yaml"), Settings())


def test_the_server_refuses_to_start_on_a_bad_scenario_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nphases:\n  - name: a\n    duration: 1\n    config: {itl_mss: 5}\n")
    assert main(["server", "--scenario", str(bad)]) == 2
    error = capsys.readouterr().err.strip()
    assert (
        error
        == f"fakeai server: error: {bad}:5: phases.0.config.itl_mss: Unknown setting 'itl_mss'; "
        + (error.split("'itl_mss'; ")[1])
    )
    assert main(["server", "--scenario", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


async def scenario_phase(client) -> str | None:
    state = (await client.get("/admin/scenario", headers=TOKEN)).json()
    return state["phase"] if state["running"] else None


async def until_phase(client, phase: str | None, deadline: float = 10.0) -> None:
    """Polls the scenario until it is in ``phase`` (None: ended): no sleep that a slow machine outruns."""
    waited = 0.0
    while await scenario_phase(client) != phase:
        assert waited < deadline, f"the scenario never reached {phase!r}"
        await asyncio.sleep(0.02)
        waited += 0.02


async def test_a_scenario_reads_as_ended_only_once_the_server_is_back_up():
    """Whoever polls the scenario until ``running: false`` may count on the start-up settings and the
    server being up again. Handing them over takes turns of the event loop (with several workers, a
    round trip to each): a poller taking a turn between each of them must not see the end before."""
    submitted: list[dict[str, Any]] = []

    async def submit(operation: dict[str, Any]) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        submitted.append(operation)

    metrics = ServerMetrics(CollectorRegistry(), models=[MODEL], endpoints=["/v1/completions"], max_model_len=4096)
    runner = ScenarioRunner(Settings(), submit, metrics)
    await runner.start(parse("name: blip\nphases:\n  - {name: gone, duration: 50ms, down: true}\n"))
    assert runner.status()["running"]
    deadline = time.monotonic() + 10.0
    while runner.status()["running"]:
        assert time.monotonic() < deadline, "the scenario never ended"
        await asyncio.sleep(0)
    assert submitted[-2]["source"] == "scenario end" and submitted[-2]["settings"] == Settings().to_json()
    assert submitted[-1] == {"op": "down", "down": False}


async def test_a_scenario_changes_settings_takes_the_server_down_and_restores_it(app_client):
    settings = {"itl_ms": 5.0, "itl_jitter": 0.0, "overhead_ms": 0.0, "admin_token": "s3cret"}
    # The outage lasts 1 s: the checks made in it need a small part of that, even on a busy machine.
    scenario = GOOD + "  - name: outage\n    duration: 1s\n    down: true\n"
    body = {"model": MODEL, "prompt": "Tell me", "max_tokens": 2}
    async with app_client(**settings) as (client, _):
        started = await client.post("/admin/scenario", content=scenario, headers=TOKEN)
        assert started.status_code == 200 and started.json()["phase"] == "slow"
        assert started.json()["next"] == "outage"
        config = (await client.get("/admin/config", headers=TOKEN)).json()
        assert config["models"][MODEL]["itl_ms"] == 100.0
        assert 'fakeai_scenario_phase_info{phase="slow",scenario="outage"} 1.0' in (await client.get("/metrics")).text
        await until_phase(client, "outage")
        assert (await client.get("/health")).status_code == 503
        assert (await client.post("/v1/completions", json=body)).status_code == 503
        assert (await client.get("/metrics")).status_code == 503
        assert await scenario_phase(client) == "outage"  # all three were answered within the outage
        await until_phase(client, None)  # the scenario has ended: up again, start-up settings back
        assert (await client.get("/admin/scenario", headers=TOKEN)).json() == {"running": False}
        assert (await client.get("/health")).status_code == 200
        assert (await client.post("/v1/completions", json=body)).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "fakeai_scenario_phase_info{" not in metrics
        assert (await client.get("/admin/config", headers=TOKEN)).json()["models"][MODEL]["itl_ms"] == 5.0


async def test_stopping_and_bad_bodies(app_client):
    async with app_client(no_delay=True, admin_token="s3cret") as (client, _):
        looping = await client.post("/admin/scenario?loop=true", content=GOOD, headers=TOKEN)
        assert looping.json()["loop"] is True and looping.json()["next"] == "slow"
        stopped = await client.delete("/admin/scenario", headers=TOKEN)
        assert stopped.json() == {"running": False}
        assert (await client.get("/admin/config", headers=TOKEN)).json()["models"][MODEL]["itl_ms"] == 12.0
        bad = await client.post("/admin/scenario", content="name: x\nphases: 3\n", headers=TOKEN)
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("body:2: phases:")
