"""The engines' own Grafana dashboards as the compose stack provisions them (grafana/engines/): each one
the verbatim copy kept in tests/data, with only what provisioning cannot resolve made concrete.

Grafana's file provisioning imports a dashboard as it is: it fills no import ``__inputs`` and knows no
datasource uid but the ones provisioned. So a datasource the engine's file names by an import input
(TGI's ``${DS_PROMETHEUS_EKS API INFERENCE PROD}``) or by its authors' own uid (SGLang's) becomes
``fakeai-prometheus``; a dashboard shipped inside a Kubernetes ConfigMap (Dynamo's) is taken out of it.
Nothing else changes. ``python -m tests.support.engine_dashboards`` writes the files; the tests check
that they are still exactly this.
"""

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
TARGET = REPO / "grafana" / "engines"
DATASOURCE_UID = "fakeai-prometheus"


def _json(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _dynamo() -> str:
    configmap = yaml.safe_load(_json(DATA / "dynamo" / "grafana-dynamo-dashboard-configmap.yaml"))
    return str(configmap["data"]["dynamo-dashboard.json"]) + "\n"


def _sglang() -> str:
    # The uid of the Prometheus its authors exported it from, in every panel and target.
    return _json(DATA / "sglang" / "grafana" / "sglang-dashboard.json").replace(
        '"uid": "ddyfngn31dg5cf"', f'"uid": "{DATASOURCE_UID}"'
    )


def _tgi() -> str:
    text = _json(DATA / "tgi" / "grafana" / "tgi_grafana.json")
    return re.sub(r"\$\{DS_PROMETHEUS_EKS API INFERENCE PROD\}", DATASOURCE_UID, text)


# file in grafana/engines -> how it is made
ENGINES = {
    "vllm-overview.json": lambda: _json(DATA / "vllm" / "grafana" / "vllm_overview.json"),
    "sglang.json": _sglang,
    "tgi.json": _tgi,
    "dynamo.json": _dynamo,
}


def provisioned(name: str) -> str:
    """The text grafana/engines/``name`` must hold."""
    return ENGINES[name]()


def board(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(provisioned(name))
    return loaded


def main() -> None:
    TARGET.mkdir(exist_ok=True)
    for name in ENGINES:
        (TARGET / name).write_text(provisioned(name), encoding="utf-8")
        print(f"wrote {TARGET / name}")


if __name__ == "__main__":
    main()
