"""``python -m fakeai load``: drive a server and report what the client saw, and whether the server agrees.

The default client is lean raw HTTP (``fakeai.traffic``): timestamps are taken as the bytes arrive and the
SSE is parsed afterwards, spread over worker processes, so the client's own cost stays out of what it
measures. ``--client sdk`` drives the openai SDK instead, for testing the SDK itself. With ``--rps`` the
arrivals are open loop (on schedule whatever the answers do); the report says when the client fell
behind its schedule.

With ``--compare`` (implied by ``--check`` and ``--json``), /metrics is read before and after, and each of
the client's quantiles (TTFT and ITL of streams, end-to-end of every answered request) is set against the
server's histogram of the same requests: the bucket ``(lo, hi]`` its rank falls in, ``histogram_quantile``'s
estimate inside it, and whether the client's value lies in that bucket (or within max(2 ms, 5%) of a
bound). Requests by status, prompt and completion tokens are compared exactly. The server must serve
nothing else meanwhile. ``--check`` exits 1 on any disagreement.
"""

import argparse
import asyncio
import multiprocessing
import os
import queue
import random
import sys
import time
from dataclasses import asdict
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import numpy as np
import openai
import orjson
from openai.types.chat import ChatCompletionMessageParam
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from bridge.reader import MetricsSnapshot, scrape
from fakeai.tools.compare import QUANTILES, Comparison, compare, measured
from fakeai.traffic.client import Timing
from fakeai.traffic.run import LATE, Plan, prompt_of, run

UNBOUNDED = 10**12
"""The request count of a run bounded by ``--duration`` only."""


def default_processes() -> int:
    """Half the cores: on a shared machine the other half runs the server under test."""
    return max(1, (os.cpu_count() or 2) // 2)


# --- the raw client, in worker processes ---------------------------------------------------------------


def _worker(plan: Plan, done: "Synchronized[int]", results: "multiprocessing.Queue[dict[str, Any]]") -> None:
    def counted(_: Timing) -> None:
        with done.get_lock():
            done.value += 1

    report = asyncio.run(run(plan, counted))
    results.put(report.to_dict())


def drive_raw(plans: list[Plan], total: int | None, console: Console, quiet: bool) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")  # a clean interpreter each: no copy of this one's state
    done = context.Value("q", 0)
    results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
    workers = [context.Process(target=_worker, args=(plan, done, results), daemon=True) for plan in plans]
    for worker in workers:
        worker.start()
    reports: list[dict[str, Any]] = []
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task("requests", total=total)
        while len(reports) < len(workers):
            try:
                reports.append(results.get(timeout=0.2))
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers) and results.empty():
                    raise RuntimeError("a load worker process died without its report") from None
            progress.update(task, completed=done.value)
    for worker in workers:
        worker.join()
    return reports


def plans(args: argparse.Namespace) -> list[Plan]:
    """One plan per worker process: each every N-th request; a closed loop's concurrency shared out."""
    processes = max(1, min(args.processes, args.requests or UNBOUNDED, args.concurrency if not args.rps else UNBOUNDED))
    start_at = time.time() + 0.5 + 0.2 * processes  # the shared schedule begins once every process is up
    return [
        Plan(
            url=args.url.rstrip("/"),
            model=args.model,
            requests=args.requests or UNBOUNDED,
            concurrency=args.concurrency // processes + (k < args.concurrency % processes),
            rps=args.rps,
            max_tokens=args.max_tokens,
            stream_ratio=args.stream_ratio,
            prompt_reuse=args.prompt_reuse,
            seed=args.seed,
            offset=k,
            stride=processes,
            start_at=start_at,
            timeout=args.timeout,
            duration=args.duration or None,
            api_key=args.api_key,
            usage_every_chunk=True,  # counts are compared exactly: a stream cut by an error still tells its tokens
        )
        for k in range(processes)
    ]


# --- the openai SDK client, in this process ---------------------------------------------------------------


async def sdk_request(client: openai.AsyncOpenAI, model: str, stream: bool, prompt: str, max_tokens: int) -> Timing:
    timing = Timing(stream=stream, status=200)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": prompt}]
    start = time.monotonic()
    try:
        if not stream:
            # No TTFT here: a client of a non-streaming request only sees the whole answer arrive.
            reply = await client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens)
            if reply.usage is not None:
                timing.prompt_tokens = reply.usage.prompt_tokens
                timing.completion_tokens = reply.usage.completion_tokens
        else:
            last = None
            chunks = await client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                stream=True,
                # vLLM's continuous_usage_stats is not in the SDK's types: sent as an extra body field.
                extra_body={"stream_options": {"include_usage": True, "continuous_usage_stats": True}},
            )
            try:
                async for chunk in chunks:
                    now = time.monotonic()
                    if chunk.usage:
                        timing.prompt_tokens = chunk.usage.prompt_tokens
                        timing.completion_tokens = chunk.usage.completion_tokens
                    if chunk.choices and chunk.choices[0].delta.content:
                        if timing.ttft is None:
                            timing.ttft = now - start
                        elif last is not None:
                            timing.itl.append(now - last)
                        last = now
            except openai.APIError:  # an error event after the 200: the server cut the stream
                timing.status = 500
    except openai.APIStatusError as exc:
        timing.status = exc.status_code
        usage = (exc.response.json() if exc.response.content else {}).get("usage") or {}
        timing.prompt_tokens = usage.get("prompt_tokens", 0)
        timing.completion_tokens = usage.get("completion_tokens", 0)
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        timing.status, timing.error = 0, type(exc).__name__
    timing.e2e = time.monotonic() - start
    return timing


async def drive_sdk(args: argparse.Namespace, console: Console, quiet: bool) -> dict[str, Any]:
    plan = Plan(args.url, args.model, args.requests, prompt_reuse=args.prompt_reuse)  # its prompts, as the raw client's
    rng = random.Random(args.seed)
    client = openai.AsyncOpenAI(
        base_url=args.url.rstrip("/") + "/v1", api_key=args.api_key or "fakeai", max_retries=0, timeout=args.timeout
    )
    gate = asyncio.Semaphore(args.concurrency)
    timings: list[Timing] = []
    late = 0
    deadline = time.monotonic() + args.duration if args.duration else None
    total = args.requests or None
    cpu, start = time.process_time(), time.monotonic()
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task("requests", total=total)

        async def one(i: int, due: float) -> None:
            async with gate:
                sent = time.monotonic()
                stream = rng.random() < args.stream_ratio
                timing = await sdk_request(client, args.model, stream, prompt_of(plan, i, rng), args.max_tokens)
                timing.started, timing.lag = sent - start, max(sent - due, 0.0) if args.rps else 0.0
                timings.append(timing)
                progress.advance(task)

        pending: set[asyncio.Future[None]] = set()
        i = 0
        while (total is None or i < total) and (deadline is None or time.monotonic() < deadline):
            due = start + i / args.rps if args.rps else 0.0
            if args.rps:
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -LATE:
                    late += 1
            else:
                await gate.acquire()  # keep `concurrency` in flight
                gate.release()
            pending.add(asyncio.ensure_future(one(i, due)))
            pending = {t for t in pending if not t.done()}
            i += 1
            await asyncio.sleep(0)
        await asyncio.gather(*pending)
    await client.close()
    elapsed = time.monotonic() - start
    return {
        "elapsed": elapsed,
        "late_starts": late,
        "cpu_seconds": time.process_time() - cpu,
        "timings": [asdict(t) for t in timings],
    }


# --- the report ------------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _bucket(bucket: tuple[float, float] | None) -> str:
    return "-" if bucket is None else f"({bucket[0] * 1000:g}, {bucket[1] * 1000:g}]"


def summary(args: argparse.Namespace, reports: list[dict[str, Any]], timings: list[Timing]) -> dict[str, Any]:
    elapsed = max(r["elapsed"] for r in reports)
    cpu = sum(r["cpu_seconds"] for r in reports)
    lags = [t.lag for t in timings]
    statuses: dict[int, int] = {}
    for t in timings:
        statuses[t.status] = statuses.get(t.status, 0) + 1
    return {
        "client": "sdk" if args.client == "sdk" else "raw",
        "processes": len(reports),
        "requests": len(timings),
        "elapsed_seconds": elapsed,
        "requests_per_second": len(timings) / elapsed if elapsed else 0.0,
        "client_cpu_ms_per_request": 1000 * cpu / len(timings) if timings else 0.0,
        "statuses": statuses,
        "prompt_tokens": sum(t.prompt_tokens for t in timings),
        "completion_tokens": sum(t.completion_tokens for t in timings),
        "late_starts": sum(r["late_starts"] for r in reports) if args.rps else None,
        "max_lag_ms": 1000 * max(lags) if args.rps and lags else None,
        "unexpected": sorted({t.error for t in timings if t.error}),
        "unexpected_count": sum(1 for t in timings if t.error),
    }


def to_json(head: dict[str, Any], timings: list[Timing], comparison: Comparison | None, checked: list[float]) -> bytes:
    body: dict[str, Any] = {**head, "client_quantiles_ms": {}}
    for name, values in measured(timings).items():
        body["client_quantiles_ms"][name] = {
            f"p{q * 100:g}": (float(np.quantile(values, q)) * 1000 if values else None) for q in QUANTILES
        }
    if comparison is not None:
        body["quantiles"] = [
            {
                "measure": row.measure,
                "quantile": row.q,
                "client_ms": None if row.client is None else row.client * 1000,
                "server_bucket_ms": None if row.bucket is None else [row.bucket[0] * 1000, row.bucket[1] * 1000],
                "server_estimate_ms": None if row.estimate is None else row.estimate * 1000,
                "agrees": row.agrees,
            }
            for row in comparison.quantiles
        ]
        body["counts"] = [asdict(row) | {"agrees": row.agrees} for row in comparison.counts]
        body["disagreements"] = comparison.disagreements(checked)
    return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def print_report(head: dict[str, Any], timings: list[Timing], comparison: Comparison | None, console: Console) -> None:
    client = "raw HTTP" if head["client"] == "raw" else "openai SDK"
    console.print(
        f"requests {head['requests']}  in {head['elapsed_seconds']:.1f} s  = {head['requests_per_second']:.1f} req/s"
        f"  (client: {client}, {head['processes']} process{'es' if head['processes'] > 1 else ''},"
        f" CPU {head['client_cpu_ms_per_request']:.2f} ms per request)"
    )
    console.print("responses by status " + "  ".join(f"{s}: {n}" for s, n in sorted(head["statuses"].items())))
    console.print(f"prompt tokens {head['prompt_tokens']}  completion tokens {head['completion_tokens']}")
    if head["late_starts"] is not None:
        behind = head["late_starts"]
        verdict = "the client fell behind its schedule" if behind else "every arrival on schedule"
        console.print(
            f"open loop: {behind} of {head['requests']} requests sent more than {LATE * 1000:g} ms late"
            f" (max {head['max_lag_ms']:.1f} ms): {verdict}"
        )
    if comparison is None:
        table = Table(title="client latency, ms")
        table.add_column("")
        for q in QUANTILES:
            table.add_column(f"p{q * 100:g}", justify="right")
        for name, values in measured(timings).items():
            table.add_row(
                f"{name} client", *(_ms(float(np.quantile(values, q)) if values else None) for q in QUANTILES)
            )
        console.print(table)
        return
    table = Table(title="latency, ms: the client's value against the server's histogram of the same requests")
    for column in ("", "quantile", "client", "server bucket", "server estimate", "in bucket"):
        table.add_column(column, justify="left" if column in ("", "server bucket") else "right")
    for row in comparison.quantiles:
        mark = {True: "yes", False: "NO", None: "-"}[row.agrees]
        table.add_row(row.measure, f"p{row.q * 100:g}", _ms(row.client), _bucket(row.bucket), _ms(row.estimate), mark)
    console.print(table)
    counts = Table(title="counts: client against server, exactly")
    for column in ("", "client", "server", "equal"):
        counts.add_column(column, justify="left" if not column else "right")
    for count in comparison.counts:
        counts.add_row(count.name, str(count.client), str(count.server), "yes" if count.agrees else "NO")
    console.print(counts)


def main(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    if not args.requests and not args.duration:
        args.requests = 100
    comparing = args.compare or args.check or args.json
    quiet = args.json
    before: MetricsSnapshot | None = scrape(args.url) if comparing else None
    if args.client == "sdk":
        reports = [asyncio.run(drive_sdk(args, console, quiet))]
    else:
        reports = drive_raw(plans(args), args.requests or None, console, quiet)
    timings = [Timing(**t) for r in reports for t in r["timings"]]
    comparison = compare(timings, before, scrape(args.url), args.model) if before is not None else None
    head = summary(args, reports, timings)
    disagreements = comparison.disagreements(args.check_quantiles) if comparison is not None else []
    if args.json:
        sys.stdout.buffer.write(to_json(head, timings, comparison, args.check_quantiles) + b"\n")
    else:
        print_report(head, timings, comparison, console)
    code = 0
    if head["unexpected_count"]:
        if not args.json:
            console.print(
                f"[red]{head['unexpected_count']} requests failed unexpectedly ({', '.join(head['unexpected'])})"
            )
        code = 1
    if args.check and disagreements:
        if not args.json:
            console.print("[red]client and server disagree:\n  " + "\n  ".join(disagreements))
        code = 1
    return code


def _quantiles(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or any(q not in QUANTILES for q in values):
        raise argparse.ArgumentTypeError(f"choose among {', '.join(f'{q:g}' for q in QUANTILES)}")
    return values


def _at_least(low: float, kind: type[int] | type[float] = int) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {text}")
        return value

    return parse


def _share(text: str) -> float:
    value = float(_at_least(0.0, float)(text))
    if value > 1:
        raise argparse.ArgumentTypeError(f"a share is at most 1, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: %(default)s)")
    parser.add_argument(
        "--model", default="meta-llama/Llama-3.1-8B-Instruct", help="the model to ask (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=_at_least(1), default=8, help="requests in flight, closed loop (default: 8)"
    )
    parser.add_argument(
        "--rps", type=_at_least(0.0, float), default=0.0, help="open-loop arrivals per second (0: closed loop)"
    )
    parser.add_argument(
        "--requests", type=_at_least(0), default=0, help="how many requests (default: 100 without --duration)"
    )
    parser.add_argument(
        "--duration", type=_at_least(0.0, float), default=0.0, help="seconds to send for, instead of --requests"
    )
    parser.add_argument("--stream-ratio", type=_share, default=0.5, help="share of streamed requests (default: 0.5)")
    parser.add_argument(
        "--prompt-reuse", type=_share, default=0.5, help="share of prompts opening with a shared prefix (default: 0.5)"
    )
    parser.add_argument("--max-tokens", type=_at_least(1), default=32, help="max_tokens of every request (default: 32)")
    parser.add_argument("--api-key", default="", help="sent as a bearer token when given")
    parser.add_argument(
        "--timeout", type=_at_least(0.001, float), default=120.0, help="seconds a request may take (default: 120)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of streams and prompts (default: 0)")
    parser.add_argument(
        "--client",
        choices=("raw", "sdk"),
        default="raw",
        help="raw: lean HTTP in worker processes (default); sdk: the openai SDK in this process",
    )
    parser.add_argument(
        "--processes",
        type=_at_least(1),
        default=default_processes(),
        help="worker processes of the raw client (default: half the cores, %(default)s here)",
    )
    parser.add_argument("--compare", action="store_true", help="set the server's histograms beside the client's values")
    parser.add_argument("--check", action="store_true", help="compare, and exit 1 on any disagreement")
    parser.add_argument(
        "--check-quantiles",
        type=_quantiles,
        default=[0.5, 0.9],
        metavar="Q,...",
        help="the quantiles --check holds to the server's buckets (default: 0.5,0.9; p99 rests on the few"
        " slowest requests, where one scheduling hiccup of the client moves it)",
    )
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON (implies --compare)")
