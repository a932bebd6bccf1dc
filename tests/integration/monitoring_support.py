"""The repository's monitoring files, read the way Grafana and Prometheus would read them."""

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
DATASOURCE_UID = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][
    0
]["uid"]


def dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p["targets"]]


def phase_annotation(board: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's annotation of scenario phases (fakeai_scenario_phase_info)."""
    return next(a for a in board["annotations"]["list"] if "fakeai_scenario_phase_info" in a.get("expr", ""))


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return board["templating"]["list"]


@contextlib.contextmanager
def background_traffic(url: str, model: str, *load: str) -> Iterator[None]:
    """Streams against ``url`` from a process of their own (``python -m fakeai.traffic``) while the block
    runs; stopped, by its process, when it ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fakeai.traffic", "--url", url, "--model", model, *load], stdout=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)
