"""``python -m fakeai.traffic --url URL --model M --requests N [--concurrency C | --rps R]``: prints one
JSON report (every request's status, TTFT, inter-token gaps and token counts) on stdout."""

import argparse
import asyncio
import sys
from collections.abc import Sequence

import orjson

from fakeai.traffic.run import Plan, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakeai.traffic", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rps", type=float, default=0.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--prompt-words", type=int, default=8, help="words per prompt, around its number")
    parser.add_argument("--image-pool", type=int, default=0, help="show one of N image URLs per request")
    args = parser.parse_args(argv)
    plan = Plan(
        args.url,
        args.model,
        args.requests,
        args.concurrency,
        args.rps,
        args.max_tokens,
        args.prompt_words,
        args.image_pool,
    )
    report = asyncio.run(run(plan))
    sys.stdout.buffer.write(orjson.dumps(report.to_dict()) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
