"""``python -m fakeai load``: drive a server with the openai SDK and report what the client saw.

With ``--compare``, /metrics is scraped before and after, and the server's quantiles for the same
requests are printed next to the client's. The client's TTFT and ITL come from streaming requests
(a non-streaming client sees only the whole answer); its end-to-end latency from all successful ones.
"""

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field

import numpy as np
import openai
from openai.types.chat import ChatCompletionMessageParam
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
from rich.table import Table

from bridge.reader import MetricsSnapshot, scrape

QUANTILES = (0.5, 0.9, 0.99)
SERVER_FAMILIES = {
    "ttft": "fakeai_time_to_first_token_seconds",
    "itl": "fakeai_inter_token_latency_seconds",
    "e2e": "fakeai_request_duration_seconds",
}


@dataclass
class Outcome:
    status: int = 200
    stream: bool = False
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    e2e: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unexpected: str | None = None


async def one_request(client: openai.AsyncOpenAI, model: str, stream: bool, prompt: str, max_tokens: int) -> Outcome:
    outcome = Outcome(stream=stream)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": prompt}]
    start = time.monotonic()
    try:
        if not stream:
            # No TTFT here: a client of a non-streaming request only sees the whole answer arrive.
            reply = await client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens)
            if reply.usage is not None:
                outcome.prompt_tokens = reply.usage.prompt_tokens
                outcome.completion_tokens = reply.usage.completion_tokens
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
                        outcome.prompt_tokens = chunk.usage.prompt_tokens
                        outcome.completion_tokens = chunk.usage.completion_tokens
                    if chunk.choices and chunk.choices[0].delta.content:
                        if outcome.ttft is None:
                            outcome.ttft = now - start
                        elif last is not None:
                            outcome.itl.append(now - last)
                        last = now
            except openai.APIError:  # an error event after the 200: the server cut the stream
                outcome.status = 500
    except openai.APIStatusError as exc:
        outcome.status = exc.status_code
        usage = (exc.response.json() if exc.response.content else {}).get("usage") or {}
        outcome.prompt_tokens = usage.get("prompt_tokens", 0)
        outcome.completion_tokens = usage.get("completion_tokens", 0)
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        outcome.status, outcome.unexpected = 0, type(exc).__name__
    outcome.e2e = time.monotonic() - start
    return outcome


async def drive(args: argparse.Namespace, console: Console) -> tuple[list[Outcome], float]:
    rng = random.Random(args.seed)
    client = openai.AsyncOpenAI(
        base_url=args.url.rstrip("/") + "/v1", api_key=args.api_key, max_retries=0, timeout=args.timeout
    )
    shared = "You are a helpful assistant answering questions about queues. " * 8
    gate = asyncio.Semaphore(args.concurrency)
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + args.duration if args.duration else None
    total = args.requests or None
    start = time.monotonic()

    async def one(i: int, progress: Progress, task: TaskID) -> None:
        async with gate:
            prompt = (shared if rng.random() < args.prompt_reuse else f"{rng.random():.12f} ") + f"question {i}"
            outcomes.append(
                await one_request(client, args.model, rng.random() < args.stream_ratio, prompt, args.max_tokens)
            )
            progress.advance(task)

    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("requests", total=total)
        pending: set[asyncio.Future[None]] = set()
        i = 0
        while (total is None or i < total) and (deadline is None or time.monotonic() < deadline):
            if args.rps:
                await asyncio.sleep(max(start + i / args.rps - time.monotonic(), 0))
            else:
                await gate.acquire()  # open-loop only with --rps; otherwise keep `concurrency` in flight
                gate.release()
            pending.add(asyncio.ensure_future(one(i, progress, task)))
            pending = {t for t in pending if not t.done()}
            i += 1
            await asyncio.sleep(0)
        await asyncio.gather(*pending)
    await client.close()
    return outcomes, time.monotonic() - start


def client_quantiles(values: list[float]) -> list[float]:
    return [float(np.quantile(values, q)) * 1000 if values else float("nan") for q in QUANTILES]


def server_quantiles(before: MetricsSnapshot, after: MetricsSnapshot, family: str, model: str) -> list[float]:
    requests = after.histogram(family, model=model) - before.histogram(family, model=model)
    return [requests.quantile(q) * 1000 for q in QUANTILES]


def report(
    outcomes: list[Outcome],
    elapsed: float,
    console: Console,
    compared: tuple[MetricsSnapshot, MetricsSnapshot] | None,
    model: str,
) -> None:
    statuses: dict[int, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    console.print(f"requests {len(outcomes)}  in {elapsed:.1f} s  = {len(outcomes) / elapsed:.1f} req/s")
    console.print("responses by status " + "  ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    console.print(
        f"prompt tokens {sum(o.prompt_tokens for o in outcomes)}  "
        f"completion tokens {sum(o.completion_tokens for o in outcomes)}"
    )
    table = Table(title="latency, ms")
    table.add_column("")
    for q in QUANTILES:
        table.add_column(f"p{int(q * 100)}", justify="right")
    measured = {
        "ttft": [o.ttft for o in outcomes if o.ttft is not None and o.status == 200],
        "itl": [gap for o in outcomes for gap in o.itl],
        "e2e": [o.e2e for o in outcomes if o.status == 200],
    }
    for name, values in measured.items():
        table.add_row(f"{name} client", *(f"{v:.1f}" for v in client_quantiles(values)))
        if compared is not None:
            server = server_quantiles(compared[0], compared[1], SERVER_FAMILIES[name], model)
            table.add_row(f"{name} server", *(f"{v:.1f}" for v in server))
    console.print(table)


def main(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    if not args.requests and not args.duration:
        args.requests = 100
    before = scrape(args.url) if args.compare else None
    outcomes, elapsed = asyncio.run(drive(args, console))
    compared = (before, scrape(args.url)) if before is not None else None
    report(outcomes, elapsed, console, compared, args.model)
    unexpected = [o.unexpected for o in outcomes if o.unexpected]
    if unexpected:
        console.print(f"[red]{len(unexpected)} requests failed unexpectedly ({', '.join(sorted(set(unexpected)))})")
        return 1
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="meta-llama/Llama-3.1-8B-Instruct")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rps", type=float, default=0.0, help="open-loop arrival rate (0: closed loop)")
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--duration", type=float, default=0.0, help="seconds (instead of --requests)")
    parser.add_argument("--stream-ratio", type=float, default=0.5)
    parser.add_argument("--prompt-reuse", type=float, default=0.5, help="share of requests with a shared prefix")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--api-key", default="fakeai")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="print the server's quantiles next to the client's")
