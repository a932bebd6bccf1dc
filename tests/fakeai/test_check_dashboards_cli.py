"""check-dashboards before it starts anything: bad files and flags, and which findings --allow-empty excuses."""

import io
import re

import pytest

from fakeai.__main__ import _parser
from fakeai.engine.profiles import DEFAULT_MODELS
from fakeai.settings import METRICS_DIALECTS, ONE_MODEL_DIALECTS, settings_from
from fakeai.tools import check_dashboards
from fakeai.tools.dashboards import Outcome, Report, Target
from fakeai.tools.rule_check import Rule, RuleOutcome, RuleReport


def run(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    code = check_dashboards.main(_parser().parse_args(["check-dashboards", *argv]), io.StringIO(), err)
    return code, err.getvalue()


def test_bad_files_stop_the_run_with_one_line(tmp_path):
    (tmp_path / "board.json").write_text("{not json")
    (tmp_path / "rules.yml").write_text("groups:\n  - name: g\n    rules:\n      - expr: up\n")
    code, message = run(str(tmp_path / "board.json"))
    assert code == 2 and message.count("\n") == 1 and "JSONDecodeError" in message
    code, message = run("--rules", str(tmp_path / "rules.yml"))
    where = f"{tmp_path / 'rules.yml'}: groups[0].rules[0]"
    assert code == 2 and message == f"fakeai check-dashboards: error: {where} needs 'alert' or 'record', and 'expr'\n"
    assert run() == (2, "fakeai check-dashboards: error: give dashboard files, --rules files, or both\n")
    with pytest.raises(SystemExit):
        _parser().parse_args(["check-dashboards", "x.json", "--allow-empty", "("])  # not a regex


def test_allow_empty_excuses_what_it_matches_and_nothing_else():
    empty = Outcome(Target("KV connector transfers", "A", "rate(vllm:nixl_xfer_time_seconds_count[1m])", False), "q", 0)
    failed = Outcome(Target("Queue", "B", "vllm:num_requests_waiting", False), "q", 0, "RuntimeError: bad")
    full = Outcome(Target("Running", "A", "vllm:num_requests_running", False), "q", 3)
    report = Report("board", {}, [empty, failed, full])
    assert check_dashboards.target_failures(report, None) == [empty, failed]
    assert check_dashboards.target_failures(report, re.compile("nixl")) == [failed]
    assert check_dashboards.target_failures(report, re.compile("^KV connector")) == [failed]
    rules = RuleReport("r.yml", [RuleOutcome(Rule("Quiet", "alert", "x > 1"), (("x", False),), 0)])
    assert len(check_dashboards.rule_failures(rules, None)) == 1
    assert check_dashboards.rule_failures(rules, re.compile("Quiet")) == []
    assert check_dashboards.missing_metrics("rate(a_total[1m]) / b", {"a_total"}) == ["b"]


@pytest.mark.parametrize("dialect", [*METRICS_DIALECTS, "vllm@0.10"])
def test_the_server_it_starts_takes_its_flags_in_every_dialect(dialect):
    args = _parser().parse_args(["check-dashboards", "x.json", "--dialect", dialect, "--server-args", "--seed 3"])
    settings = settings_from(_parser().parse_args(["server", *check_dashboards.server_flags(args)]))
    assert settings.seed == 3 and settings.data_parallel_size == 2 and settings.enable_sleep_mode
    assert len(settings.models) == (1 if dialect in ONE_MODEL_DIALECTS else len(DEFAULT_MODELS))
