"""Soak: a million mixed requests through one worker; the server's memory must not grow with them.

    python benchmarks/soak.py [--requests 1000000] [--segment 12]

Needs ``wrk``. The mix (a wrk Lua script, 32 keep-alive connections): non-streaming and streaming chat,
text completions, embeddings, injected faults (``--error-rate 0.05``: 429, 500, 503 and mid-generation
aborts), and one request in twenty for a model name never seen before (a 404 that must create nothing).
Beside it, a second process keeps opening new connections that start a stream of a slow model and
walk away after the first chunk (client disconnects, and a new connection each). The server's RSS is
read every ``--segment`` seconds (about 100,000 requests at 8,000 requests/s).

Checks, printed at the end (exit 1 when one fails):
- after warm-up (the first 20% of the requests), RSS stays within 10% of its value then;
- the books balance: every accepted request has exactly one response, and no stream or request is left
  open (the running, waiting and active-stream gauges are back at 0).
"""

import argparse
import asyncio
import json
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import free_port, pinned, require_wrk, rss_mib, verdict, wait_port

from bridge.reader import scrape

FAST, SLOW = "fast-model", "slow-model"
# A wrk script; __FAST__ is replaced by the fast model's name.
LUA = """
local counter = 0
local headers = {["Content-Type"] = "application/json"}
local chat = '{"model":"%s","messages":[{"role":"user","content":"queue %d"}],"max_tokens":16%s}'
local streaming = ',"stream":true,"stream_options":{"include_usage":true}'
request = function()
  counter = counter + 1
  local r = counter % 20
  if r < 8 then
    return wrk.format("POST", "/v1/chat/completions", headers, string.format(chat, "__FAST__", counter, ""))
  elseif r < 13 then
    return wrk.format("POST", "/v1/chat/completions", headers, string.format(chat, "__FAST__", counter, streaming))
  elseif r < 16 then
    local body = string.format('{"model":"__FAST__","prompt":"p %d","max_tokens":8}', counter)
    return wrk.format("POST", "/v1/completions", headers, body)
  elseif r < 19 then
    local body = string.format('{"model":"__FAST__","input":"e %d"}', counter)
    return wrk.format("POST", "/v1/embeddings", headers, body)
  else
    local body = string.format(chat, "never-seen-" .. counter, counter, "")
    return wrk.format("POST", "/v1/chat/completions", headers, body)
  end
end
""".replace("__FAST__", FAST)


def walk_aways(port: int, stop: Any, counter: Any) -> None:
    """New connection, a stream of the slow model, gone after its first chunk; again and again."""
    body = json.dumps(
        {"model": SLOW, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64, "stream": True}
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        if b" 200 " in await reader.readline():  # an injected fault answers at once, in JSON
            await reader.readuntil(b"data: ")  # the first chunk arrived
        writer.close()

    async def loop() -> None:
        while not stop.is_set():
            await asyncio.gather(*(one() for _ in range(8)))
            with counter.get_lock():
                counter.value += 8
            await asyncio.sleep(0.02)

    asyncio.run(loop())


def run_wrk(url: str, seconds: float, script: Path) -> int:
    command = ["wrk", "-t1", "-c32", f"-d{int(seconds)}s", "-s", str(script), url]
    out = subprocess.run(pinned(1, command), capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--segment", type=float, default=12.0, help="seconds of load between two RSS readings")
    args = parser.parse_args()
    require_wrk()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flags = [
        *("--models", f"{FAST},{SLOW}", "--error-rate", "0.05", "--log-level", "warning"),
        *("--model-profile", f"{FAST}:overhead_ms=0,itl_ms=0,itl_jitter=0,prefill_ms_per_token=0"),
        *("--model-profile", f"{SLOW}:itl_ms=200"),
    ]
    server = subprocess.Popen(
        pinned(0, [sys.executable, "-m", "fakeai", "server", "--port", str(port), *flags]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = multiprocessing.Event()
    walked = multiprocessing.Value("q", 0)
    leaver = multiprocessing.Process(target=walk_aways, args=(port, stop, walked), daemon=True)
    failures: list[str] = []
    try:
        wait_port(port)
        leaver.start()
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "mix.lua"
            script.write_text(LUA)
            sent, readings = 0, []
            start = time.monotonic()
            print(f"{'requests':>10} {'walk-aways':>11} {'RSS MiB':>8} {'req/s':>8}")
            while sent < args.requests:
                done = run_wrk(url + "/v1/chat/completions", args.segment, script)
                sent += done
                readings.append((sent, rss_mib(server.pid)))
                print(f"{sent:>10} {walked.value:>11} {readings[-1][1]:>8.1f} {done / args.segment:>8.0f}", flush=True)
        stop.set()
        leaver.join(timeout=30)
        time.sleep(2)  # the last walk-aways' streams are noticed and closed
        elapsed = time.monotonic() - start
        warm = next(rss for count, rss in readings if count >= 0.2 * args.requests)
        later = [rss for count, rss in readings if count > 0.2 * args.requests]
        growth = max(later, default=warm) / warm - 1
        print(
            f"\n{sent} requests and {walked.value} walk-aways in {elapsed:.0f} s; RSS after warm-up {warm:.1f} MiB, "
            f"largest later {max(later, default=warm):.1f} MiB ({100 * growth:+.1f}%)"
        )
        if growth > 0.10:
            failures.append(f"RSS grew {100 * growth:.1f}% after warm-up (limit 10%)")
        books = scrape(url)
        accepted = books.value("fakeai_requests_total")
        answered = books.value("fakeai_responses_total")
        open_now = {
            name: books.value(name)
            for name in ("fakeai_requests_running", "fakeai_requests_waiting", "fakeai_active_streams")
        }
        never_seen = len(books.label_values("fakeai_requests_total", "model") - {FAST, SLOW})
        print(
            f"accepted {accepted:.0f}, answered {answered:.0f}, open now {open_now}, "
            f"series for unknown models {never_seen}"
        )
        if accepted != answered or any(open_now.values()) or never_seen:
            failures.append("the books do not balance")
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
    return verdict("soak", failures)


if __name__ == "__main__":
    sys.exit(main())
