"""``fakeai load`` as a measuring instrument, against one server started here with the default latency profile.

1. Agreement: ``--runs`` runs of ``fakeai load --json`` (raw client, all requests streamed) at each
   ``--concurrency``; for every run, whether the client's TTFT, ITL and end-to-end p50, p90 and p99 lie in
   the server's bucket (or within max(2 ms, 5%) of a bound), then per quantile how many runs agreed.
2. Cost: the raw client and the openai SDK client (``--client sdk``), alternating, same server, same
   requests: client CPU per request (the client's process time over its requests) and their ratio.

    python benchmarks/load_client.py --runs 5 --concurrency 16 64 --requests 600
"""

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakeai.server_process import ServerProcess

MODEL = "m"


def load(url: str, concurrency: int, requests: int, client: str) -> dict:
    command = [sys.executable, "-m", "fakeai", "load", "--url", url, "--model", MODEL, "--json"]
    command += ["--requests", str(requests), "--concurrency", str(concurrency), "--stream-ratio", "1"]
    command += ["--client", client]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    return dict(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--requests", type=int, default=600, help="requests per run")
    parser.add_argument("--cost-rounds", type=int, default=3, help="raw/sdk pairs for the cost comparison (0: none)")
    args = parser.parse_args()
    with ServerProcess(["--models", MODEL]) as server:
        load(server.url, 8, 50, "raw")  # warm up
        for concurrency in args.concurrency:
            agreed: dict[tuple[str, float], int] = defaultdict(int)
            print(f"\nagreement at concurrency {concurrency}, {args.runs} runs of {args.requests} streamed requests")
            for run in range(args.runs):
                report = load(server.url, concurrency, args.requests, "raw")
                marks = []
                for row in report["quantiles"]:
                    agreed[(row["measure"], row["quantile"])] += bool(row["agrees"])
                    mark = "ok" if row["agrees"] else "OUT"
                    marks.append(
                        f"{row['measure']} p{row['quantile'] * 100:g} {row['client_ms']:.1f}"
                        f" in ({row['server_bucket_ms'][0]:g}, {row['server_bucket_ms'][1]:g}] {mark}"
                    )
                counts = "counts equal" if all(c["agrees"] for c in report["counts"]) else "COUNTS DIFFER"
                print(f"  run {run + 1}: {counts}; " + "; ".join(marks))
            print(
                "  runs in the server's bucket: "
                + ", ".join(f"{measure} p{q * 100:g} {n}/{args.runs}" for (measure, q), n in agreed.items())
            )
        if args.cost_rounds < 1:
            return
        print(f"\nclient CPU per request, 64 streams, {args.requests} requests, {args.cost_rounds} rounds alternating")
        cost: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.cost_rounds):
            for client in ("raw", "sdk"):
                cost[client].append(load(server.url, 64, args.requests, client)["client_cpu_ms_per_request"])
        raw, sdk = statistics.median(cost["raw"]), statistics.median(cost["sdk"])
        print(
            f"  raw {raw:.2f} ms (rounds {', '.join(f'{v:.2f}' for v in cost['raw'])}); "
            f"sdk {sdk:.2f} ms (rounds {', '.join(f'{v:.2f}' for v in cost['sdk'])}); raw / sdk {raw / sdk:.2f}"
        )


if __name__ == "__main__":
    main()
