"""``python -m fakeai check-dashboards`` as a user runs it: on the project's own dashboards and rule files every
target and rule has data; a dashboard with a misspelled metric is named, with that metric, and fails the run."""

import json
import subprocess
import sys
from pathlib import Path

from fakeai.tools.rule_check import load_rules

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
RULES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
WRONG = "vllm:num_requests_runing"


def test_check_dashboards_finds_every_target_with_data_and_names_a_wrong_metric(tmp_path):
    broken = json.loads((REPO / "grafana" / "dashboards" / "vllm-compatible.json").read_text())
    broken["title"] = "broken copy"
    text = json.dumps(broken).replace("vllm:num_requests_running", WRONG)
    assert WRONG in text
    (tmp_path / "broken.json").write_text(text)
    command = [sys.executable, "-m", "fakeai", "check-dashboards", *map(str, DASHBOARDS), str(tmp_path / "broken.json")]
    command += ["--rules", *map(str, RULES), "--duration", "20"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    print(run.stdout)
    assert run.returncode == 1, run.stderr
    assert "traffic " in run.stderr and " scrapes" in run.stderr  # progress while the traffic runs
    for path in DASHBOARDS:
        targets = sum(len(p.get("targets", [])) for p in _panels(json.loads(path.read_text())))
        assert f"{path}" in run.stdout and f": {targets}/{targets} targets with data" in run.stdout
    wrong = [line for line in run.stdout.splitlines() if WRONG in line]
    assert wrong and all(" empty " in line for line in wrong), wrong
    assert "broken copy): " in run.stdout and f"{len(wrong)} without data" in run.stdout.splitlines()[-1]
    for path in RULES:
        rules = load_rules(path)
        assert f"{path}: {len(rules)}/{len(rules)} rules with data for every selector" in run.stdout
        assert all(f"{rule.name} ({rule.kind})" in run.stdout for rule in rules)
        assert all(" ".join(rule.expr.split())[:40] in run.stdout for rule in rules)  # each rule's expression


def _panels(board: dict) -> list[dict]:
    found = []
    for panel in board.get("panels", []):
        found.append(panel)
        found += panel.get("panels", [])
    return found


def test_check_dashboards_uses_a_running_server_with_its_key_and_allow_empty_excuses(
    start_server, run_prometheus, tmp_path
):
    server = start_server("--itl-ms", "5", "--overhead-ms", "1", "--api-keys", "sesame")
    prometheus = run_prometheus(server.url, scrape_interval=1)
    generated = "sum(increase(vllm:generation_tokens_total[1m])) > 0"  # data only once answers went out
    board = {
        "title": "mine",
        "panels": [
            {"title": "Tokens", "targets": [{"refId": "A", "expr": generated}]},
            {"title": "Typo", "targets": [{"refId": "A", "expr": f"sum(rate({WRONG}[1m]))"}]},
        ],
    }
    (tmp_path / "mine.json").write_text(json.dumps(board))
    command = [sys.executable, "-m", "fakeai", "check-dashboards", str(tmp_path / "mine.json"), "--url", server.url]
    command += ["--prometheus-url", prometheus, "--scrape-interval", "1", "--duration", "8", "--allow-empty", "^Typo$"]
    command += ["--api-key", "sesame"]  # the server asks for one: without it the traffic would be 401s
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    print(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "started" not in run.stderr  # neither a server nor a Prometheus of its own
    assert "mine): 1/2 targets with data" in run.stdout and WRONG in run.stdout
    assert run.stdout.splitlines()[-1] == "every target and rule has data but 1 excused by --allow-empty"
