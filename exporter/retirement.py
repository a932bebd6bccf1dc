"""What a ``--workers`` process that died without its shutdown leaves in the multiprocess folder, settled.

prometheus-client keeps one file per process and metric type. A worker killed by SIGKILL or the OOM
killer never runs its shutdown, so its live gauges (running and waiting requests, open streams, KV usage)
would stay in the sums for ever, and the requests it had accepted but not answered would be neither
answered nor counted. ``retire`` does what its shutdown would have done and accounts for the loss:

- its live gauges go (prometheus-client's ``mark_process_dead``); everything else it recorded stays, so
  no counter goes backwards;
- the requests it accepted (``fakeai_requests_total``) and never ended (``fakeai_responses_total``) are
  counted, by label set, in ``fakeai_lost_requests_total``;
- ``fakeai_worker_restarts_total`` counts the retirement.

The supervisor (``fakeai.supervisor``) is not a worker and does not record through prometheus-client's
metric classes (its values would live in its own memory): it writes its two counters into a file of its
own in the same folder, in prometheus-client's file format (``MmapedDict``, ``mmap_key``), which
``MultiProcessCollector`` reads with the workers' files.
"""

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import mark_process_dead

REQUESTS, RESPONSES = "fakeai_requests", "fakeai_responses"
LOST = ("fakeai_lost_requests", "Requests a worker had accepted and not answered when it died.")
RESTARTS = ("fakeai_worker_restarts", "Workers that died without their shutdown, each retired and replaced.")

LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Retired:
    pid: int
    lost: dict[LabelSet, float]
    """Requests in flight on the dead worker, by label set (endpoint, model, and engine/priority if any)."""

    @property
    def lost_total(self) -> int:
        return int(sum(self.lost.values()))


def in_flight(folder: Path, pid: int) -> dict[LabelSet, float]:
    """Requests ``pid`` accepted and did not answer, from its counter file."""
    path = folder / f"counter_{pid}.db"
    if not path.exists():
        return {}
    accepted: Counter[LabelSet] = Counter()
    answered: Counter[LabelSet] = Counter()
    for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
        metric, sample, labels, _help = json.loads(key)
        if metric == REQUESTS and sample == REQUESTS + "_total":
            accepted[tuple(sorted(labels.items()))] += value
        elif metric == RESPONSES and sample == RESPONSES + "_total":
            labels.pop("status", None)
            answered[tuple(sorted(labels.items()))] += value
    return {labels: count - answered[labels] for labels, count in accepted.items() if count > answered[labels]}


class Ledger:
    """The supervisor's own counters, in a file of its own in the multiprocess folder."""

    def __init__(self, folder: Path, owner: int) -> None:
        self._file = MmapedDict(str(folder / f"counter_supervisor{owner}.db"))  # type: ignore[no-untyped-call]
        self._values: dict[str, float] = {}
        self._add(RESTARTS, (), 0.0)  # at 0 from the start: a series Prometheus and dashboards can read

    def _add(self, family: tuple[str, str], labels: LabelSet, amount: float) -> None:
        name, help_text = family
        key = mmap_key(name, name + "_total", [k for k, _ in labels], [v for _, v in labels], help_text)
        self._values[key] = self._values.get(key, 0.0) + amount
        self._file.write_value(key, self._values[key], time.time())  # type: ignore[no-untyped-call]

    def retire(self, folder: Path, pid: int) -> Retired:
        """Settle a dead worker's files: its loss counted, its live gauges removed, a restart counted."""
        retired = Retired(pid, in_flight(folder, pid))
        for labels, count in retired.lost.items():
            self._add(LOST, labels, count)
        mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]
        self._add(RESTARTS, (), 1.0)
        return retired

    def close(self) -> None:
        self._file.close()  # type: ignore[no-untyped-call]
