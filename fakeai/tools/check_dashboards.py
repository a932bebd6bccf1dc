"""Which panels of your Grafana dashboards and which of your Prometheus rules have data against fakeai.

Starts fakeai (or uses --url) and a real Prometheus scraping it every second (the ``prometheus`` binary on
PATH, or --prometheus-url, which must already scrape the server), drives a traffic mix that exercises
every simulated feature (or the server runs --scenario), then evaluates every panel target of each
dashboard as Grafana would (template variables, $__rate_interval, $__interval, $__range, All and
multi-value) and every rule of each rule file (whether each series selector it uses has data; the
expression's own result, which is empty for a quiet alert, only as information). Prints a table per file;
exits 1 when a target or a rule has no data, unless --allow-empty matches it, and 2 on a bad file or flag.
"""

import argparse
import contextlib
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import orjson

from bridge.reader import scrape
from fakeai.engine.profiles import DEFAULT_MODELS
from fakeai.server_process import ServerProcess
from fakeai.settings import METRICS_DIALECTS, ONE_MODEL_DIALECTS, VLLM_PIN
from fakeai.tools.dashboards import Dashboard, Outcome, Prometheus, Report, TimeRange, evaluate
from fakeai.tools.prometheus_process import PrometheusNotFound, PrometheusProcess
from fakeai.tools.promql import metric_names
from fakeai.tools.rule_check import RuleFileError, RuleOutcome, RuleReport, check_rules, load_rules
from fakeai.traffic import API_KEY_ENV

# What the server fakeai starts turns on, so that every family has data: speculative decoding, two
# data-parallel engines, a LoRA adapter, KV-cache residency and MFU metrics, sleep mode (one sleep and
# wake during the traffic), a small KV pool (preemptions, evictions), and 2% engine errors.
FEATURE_FLAGS: tuple[str, ...] = (
    *("--itl-ms", "20", "--overhead-ms", "1", "--num-blocks", "48", "--error-rate", "0.02"),
    *("--enable-sleep-mode", "--enable-mfu-metrics", "--kv-cache-metrics", "--kv-cache-metrics-sample", "1"),
    *("--speculative-config", '{"method": "ngram", "num_speculative_tokens": 3}', "--data-parallel-size", "2"),
    *("--enable-lora", "--lora-modules", "sql-adapter=/adapters/sql"),
)


def traffic_mix(models: Sequence[str], rate: float) -> dict[str, Any]:
    """The load sent meanwhile (``fakeai.scenario.Traffic``): every served model and adapter, chat and
    completions, half streamed, lengths drawn from log-normal laws, shared prefixes for cache hits."""
    return {
        "rate": rate,
        "models": {model: 1.0 for model in models},
        "endpoints": {"chat": 1.0, "completions": 1.0},
        "stream": 0.5,
        "prompt_tokens": {"median": 96, "sigma": 0.6},
        "output_tokens": {"median": 24, "sigma": 0.6},
        "prefix_reuse": 0.6,
        "max_concurrency": 24,
        "seed": 1,
    }


def served_models(url: str, api_key: str | None) -> list[str]:
    """The models (and adapters) a server lists at /v1/models."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    answer = httpx.get(url + "/v1/models", timeout=30, headers=headers)
    if answer.status_code == 401:
        raise ValueError(f"{url}/v1/models answered 401: the server asks for an API key (--api-key)")
    answer.raise_for_status()
    return [card["id"] for card in answer.json()["data"]]


@contextlib.contextmanager
def traffic(url: str, models: Sequence[str], seconds: float, rate: float, api_key: str | None) -> Iterator[None]:
    """The traffic mix from a process of its own (``fakeai.traffic.phase_load``), stopped when the block ends."""
    mix = orjson.dumps(traffic_mix(models, rate)).decode()
    command = [sys.executable, "-m", "fakeai.traffic.phase_load", "--url", url, "--model", models[0]]
    command += ["--duration", f"{seconds:g}", "--traffic", mix, "--label", "check-dashboards traffic"]
    env = {**os.environ, API_KEY_ENV: api_key} if api_key else None
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


def sleep_and_wake(url: str, after: float, asleep: float, done: threading.Event) -> None:
    """One level-1 sleep and wake of every engine, so the sleep-mode families have data."""
    if done.wait(after):
        return
    with httpx.Client(base_url=url, timeout=30) as client:
        if client.post("/sleep", params={"level": 1}).status_code == 200:
            done.wait(asleep)
            client.post("/wake_up")


@dataclass
class Checked:
    """Everything one run found."""

    dashboards: list[tuple[str, Report]]
    rules: list[RuleReport]
    exposed: set[str]
    """The sample names the server's /metrics exposes, and the names the rule files record."""


def missing_metrics(query: str, exposed: set[str]) -> list[str]:
    return [name for name in metric_names(query) if name not in exposed]


def allowed(pattern: re.Pattern[str] | None, *texts: str) -> bool:
    return pattern is not None and any(pattern.search(text) for text in texts)


def target_failures(report: Report, pattern: re.Pattern[str] | None) -> list[Outcome]:
    return [o for o in report.without_data if not allowed(pattern, o.target.panel, o.target.expr, o.query)]


def rule_failures(report: RuleReport, pattern: re.Pattern[str] | None) -> list[RuleOutcome]:
    return [o for o in report.outcomes if not o.has_data and not allowed(pattern, o.rule.name, o.rule.expr)]


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def print_dashboard(path: str, report: Report, exposed: set[str], out: TextIO) -> None:
    print(f"\n{path} ({report.dashboard}): {len(report.with_data)}/{len(report.outcomes)} targets with data", file=out)
    rows = [("panel", "target", "result", "metrics neither exposed by fakeai nor recorded by the rules")]
    for o in report.outcomes:
        result = "data" if o.has_data else ("error" if o.error else "empty")
        missing = "" if o.has_data else ", ".join(missing_metrics(o.query, exposed)) or (o.error or "")
        rows.append((_clip(o.target.panel, 40), o.target.ref, result, _clip(missing, 100)))
    _table(rows, out)


def print_rules(report: RuleReport, out: TextIO) -> None:
    print(f"\n{report.summary()}", file=out)
    rows = [("rule", "expression", "selectors with data", "expression now", "selectors without data")]
    for o in report.outcomes:
        have = f"{len(o.selectors) - len(o.missing)}/{len(o.selectors)}"
        now = o.error or f"{o.series} series"
        rule = f"{o.rule.name} ({o.rule.kind})"
        rows.append((rule, _clip(o.rule.expr, 60), have, _clip(now, 60), _clip(", ".join(o.missing), 100)))
    _table(rows, out)


def server_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--metrics-dialect", args.dialect, *FEATURE_FLAGS]
    if args.dialect in ONE_MODEL_DIALECTS:
        flags += ["--models", DEFAULT_MODELS[0]]  # these engines' series cannot tell models apart
    if args.scenario:
        flags += ["--scenario", str(args.scenario)]
    return [*flags, *shlex.split(args.server_args)]


def progress(url: str, prometheus: Prometheus, seconds: float, done: threading.Event, out: TextIO) -> None:
    """A line every few seconds while the traffic runs: time, requests answered, scrapes taken."""
    start = time.monotonic()
    while not done.wait(3.0):
        elapsed = time.monotonic() - start
        try:
            answered = scrape(url).value("fakeai_responses_total")
            scrapes = prometheus.query('count_over_time(up{job="fakeai"}[1h])')
            taken = int(float(scrapes[0]["value"][1])) if scrapes else 0
            line = f"traffic {elapsed:.0f}/{seconds:g} s: {answered:.0f} responses, {taken} scrapes"
        except (OSError, RuntimeError, ValueError, httpx.HTTPError) as exc:
            line = f"traffic {elapsed:.0f}/{seconds:g} s ({type(exc).__name__} reading progress)"
        print(line, file=out, flush=True)


def run(args: argparse.Namespace, err: TextIO = sys.stderr) -> Checked:
    dashboards = [(str(path), Dashboard.load(path)) for path in args.files]
    # A bad rule file stops the run before anything starts. Recording rules' names are known metrics.
    recorded = {rule.name for path in args.rules for rule in load_rules(path) if rule.kind == "record"}
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            server = stack.enter_context(ServerProcess(server_flags(args)))
            url = server.url
            print(f"fakeai started at {url} ({args.dialect} names)", file=err, flush=True)
        prometheus_url = args.prometheus_url
        scrape_interval = args.scrape_interval
        if prometheus_url is None:
            # The rule files loaded too: dashboards often plot what recording rules record.
            own = stack.enter_context(PrometheusProcess([url], scrape_interval=1.0, rule_files=args.rules))
            prometheus_url, scrape_interval = own.url, 1.0
            print(f"Prometheus started at {prometheus_url}, scraping every 1 s", file=err, flush=True)
        prometheus = Prometheus(prometheus_url)
        done = threading.Event()
        helpers = [threading.Thread(target=progress, args=(url, prometheus, args.duration, done, err), daemon=True)]
        if args.url is None and not args.scenario:
            helpers.append(threading.Thread(target=sleep_and_wake, args=(url, args.duration / 2, 2.0, done)))
        if not args.scenario:
            stack.enter_context(traffic(url, served_models(url, args.api_key), args.duration, args.rate, args.api_key))
        for helper in helpers:
            helper.start()
        try:
            time.sleep(args.duration)
        finally:
            done.set()
            for helper in helpers:
                helper.join(timeout=60)
        time.sleep(2 * scrape_interval)  # the last requests scraped
        span = TimeRange(seconds=args.duration + 4 * scrape_interval, scrape_interval=scrape_interval)
        exposed = set(scrape(url).names()) | recorded
        reports = [(path, evaluate(board, prometheus, span)) for path, board in dashboards]
        rule_reports = [check_rules(path, prometheus, span) for path in args.rules]
    return Checked(reports, rule_reports, exposed)


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE", help="Grafana dashboard JSON files")
    parser.add_argument("--rules", nargs="+", type=Path, default=[], metavar="FILE", help="Prometheus rule files")
    parser.add_argument(
        "--dialect",
        default="vllm",
        help=f"the engine names fakeai exposes: {', '.join(METRICS_DIALECTS)} or {VLLM_PIN}X.Y (default: vllm)",
    )
    parser.add_argument("--scenario", type=Path, help="run this scenario file (its own traffic) instead of the mix")
    parser.add_argument("--url", help="use this running fakeai instead of starting one")
    parser.add_argument(
        "--prometheus-url", help="use this Prometheus (it must scrape the server) instead of starting one"
    )
    parser.add_argument(
        "--api-key", help="the bearer token the traffic sends, for a server that asks for one (--api-keys)"
    )
    parser.add_argument(
        "--scrape-interval", type=float, default=15.0, help="that Prometheus's scrape interval, s (default: 15)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of traffic before checking (default: 30)")
    parser.add_argument("--rate", type=float, default=15.0, help="requests per second of the mix (default: 15)")
    parser.add_argument(
        "--allow-empty",
        type=_regex,
        metavar="REGEX",
        help="a target or rule may stay empty when this matches its panel title, expression or rule name",
    )
    parser.add_argument(
        "--server-args", default="", help="more flags for the fakeai started here, as one shell-quoted string"
    )


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    if not args.files and not args.rules:
        print("fakeai check-dashboards: error: give dashboard files, --rules files, or both", file=err)
        return 2
    try:
        checked = run(args, err)
    except (RuleFileError, PrometheusNotFound) as exc:
        print(f"fakeai check-dashboards: error: {exc}", file=err)
        return 2
    except (OSError, ValueError, httpx.HTTPError) as exc:
        print(f"fakeai check-dashboards: error: {type(exc).__name__}: {exc}", file=err)
        return 2
    failures = empty = 0
    for path, report in checked.dashboards:
        print_dashboard(path, report, checked.exposed, out)
        failures += len(target_failures(report, args.allow_empty))
        empty += len(report.without_data)
    for rule_report in checked.rules:
        print_rules(rule_report, out)
        failures += len(rule_failures(rule_report, args.allow_empty))
        empty += sum(not o.has_data for o in rule_report.outcomes)
    if failures:
        verdict = f"{failures} without data" + (
            f" ({empty - failures} more excused by --allow-empty)" if empty > failures else ""
        )
    else:
        verdict = (
            f"every target and rule has data but {empty} excused by --allow-empty"
            if empty
            else "every target and rule has data"
        )
    print(f"\n{verdict}", file=out)
    return 1 if failures else 0
