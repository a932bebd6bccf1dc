"""Settling a dead worker's metric files (exporter/retirement.py), on files written in prometheus-client's
own format: the loss read from its counters, its live gauges gone, the rest kept."""

import time

from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from exporter.retirement import Ledger, in_flight

DEAD, ALIVE, SUPERVISOR = 4242, 4343, 1


def write(path, entries) -> None:
    """What a worker's prometheus-client writes: (family, sample, labels, value) per series."""
    store = MmapedDict(str(path))
    for family, sample, labels, value in entries:
        store.write_value(mmap_key(family, sample, list(labels), list(labels.values()), "help"), value, time.time())
    store.close()


def worker(folder, pid: int, accepted: int, answered: int, running: int) -> None:
    chat = {"endpoint": "/v1/chat/completions", "model": "m"}
    write(
        folder / f"counter_{pid}.db",
        [
            ("fakeai_requests", "fakeai_requests_total", chat, accepted),
            ("fakeai_responses", "fakeai_responses_total", {**chat, "status": "200"}, answered - 1),
            ("fakeai_responses", "fakeai_responses_total", {**chat, "status": "429"}, 1),
        ],
    )
    write(folder / f"gauge_livesum_{pid}.db", [("fakeai_requests_running", "fakeai_requests_running", chat, running)])


def read(folder) -> dict[str, float]:
    """Every sample name's sum over its series, as MultiProcessCollector aggregates the folder."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    sums: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def test_a_dead_workers_in_flight_requests_are_counted_lost_and_its_gauges_go(tmp_path):
    worker(tmp_path, DEAD, accepted=10, answered=6, running=4)
    worker(tmp_path, ALIVE, accepted=5, answered=3, running=2)
    assert in_flight(tmp_path, DEAD) == {(("endpoint", "/v1/chat/completions"), ("model", "m")): 4}
    assert in_flight(tmp_path, 9999) == {}  # a worker that never counted a request
    ledger = Ledger(tmp_path, SUPERVISOR)
    assert read(tmp_path)["fakeai_worker_restarts_total"] == 0  # there from the start
    retired = ledger.retire(tmp_path, DEAD)
    ledger.close()
    assert retired.lost_total == 4
    values = read(tmp_path)
    assert values["fakeai_requests_running"] == 2  # only the living worker's
    assert values["fakeai_requests_total"] == 15  # nothing counted goes backwards
    assert values["fakeai_responses_total"] == 9
    assert values["fakeai_lost_requests_total"] == 4
    assert values["fakeai_worker_restarts_total"] == 1
    assert (
        values["fakeai_requests_total"] - values["fakeai_responses_total"] - values["fakeai_lost_requests_total"] == 2
    )
    assert not (tmp_path / f"gauge_livesum_{DEAD}.db").exists()


def test_every_retirement_adds_to_the_same_series(tmp_path):
    worker(tmp_path, DEAD, accepted=3, answered=2, running=1)
    worker(tmp_path, ALIVE, accepted=4, answered=2, running=2)
    ledger = Ledger(tmp_path, SUPERVISOR)
    ledger.retire(tmp_path, DEAD)
    ledger.retire(tmp_path, ALIVE)
    ledger.close()
    values = read(tmp_path)
    assert values["fakeai_lost_requests_total"] == 1 + 2
    assert values["fakeai_worker_restarts_total"] == 2
