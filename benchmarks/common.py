"""What the benchmarks share: free ports, CPU pinning, a process's CPU time, wrk, rounds in processes of their own
from a checkout, instruction counts by Valgrind, and a median with its range."""

import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: int, command: list[str]) -> list[str]:
    """Run ``command`` on one CPU (taskset), so a server and its load generator do not share a core."""
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def require_wrk() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")


def wrk_script(folder: Path, body: dict) -> Path:
    """A wrk Lua script that POSTs ``body`` as JSON."""
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    return script


def fakeai_command(port: int, *flags: str) -> list[str]:
    """``python -m fakeai server`` on ``port`` with quiet logs, plus ``flags``."""
    return [sys.executable, "-m", "fakeai", "server", "--port", str(port), "--log-level", "warning", *flags]


@contextlib.contextmanager
def background(command: list[str], cpu: int | None = None, tree: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run ``command`` (on one CPU when ``cpu`` is given; with ``tree``, importing fakeai from that
    checkout rather than an installed copy) for the duration of the block, then stop it."""
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree is not None else None
    process = subprocess.Popen(
        pinned(cpu, command) if cpu is not None else command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tree,
        env=env,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def verdict(name: str, failures: list[str]) -> int:
    """Print each failed check and the outcome; the exit code of a benchmark that checks itself."""
    for failure in failures:
        print("FAILED:", failure)
    print(f"{name}: " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


def spread(values: list[float], digits: int = 1) -> str:
    """The median and the range of ``values``: ``"12.3 (11.0-15.2)"``."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def child_round(script: Path, tree: Path, arguments: list[str], timeout: float = 1800) -> dict[str, float]:
    """``script --child ARGUMENTS`` in a process of its own, importing fakeai and bridge from ``tree``; the
    figures it prints as JSON on its last line."""
    environment = dict(os.environ, PYTHONPATH=str(tree))
    command = [sys.executable, str(script), "--child", *arguments]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"round in {tree} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def trees_in_turn(baseline: Path | None, rounds: int) -> Iterator[tuple[int, str, Path]]:
    """(round, name, checkout) of each run: this checkout ("after") and, with ``baseline``, that one
    ("before"), taking turns and swapping order every round."""
    trees = {"after": Path(__file__).resolve().parent.parent}
    if baseline is not None:
        trees["before"] = baseline.resolve()
    for round_number in range(rounds):
        for name in list(trees) if round_number % 2 == 0 else list(reversed(trees)):
            yield round_number, name, trees[name]


CACHEGRIND_SUMMARY = {
    "instructions": re.compile(r"I\s+refs:\s+([\d,]+)"),
    "I1 misses": re.compile(r"I1\s+misses:\s+([\d,]+)"),
    "D1 read misses": re.compile(r"D1\s+misses:\s+([\d,]+)\s+\(\s*([\d,]+) rd"),
}


def cachegrind(arguments: list[str], tree: Path, cache_sim: bool = False) -> dict[str, int]:
    """Valgrind's totals for ``python ARGUMENTS`` run from ``tree`` (its checkout first on ``sys.path``):
    instructions, and with ``cache_sim`` first-level instruction and data read misses."""
    command = ["valgrind", "--tool=cachegrind", f"--cache-sim={'yes' if cache_sim else 'no'}"]
    command += ["--cachegrind-out-file=/dev/null", sys.executable, *arguments]
    # A fixed hash seed: dict and set layouts, and with them the counts, are the same every run. OpenBLAS's
    # worker threads wait for work by spinning, for as long as the clock says: one thread, none of them.
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(tree)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree)
    if done.returncode != 0:
        raise SystemExit(f"valgrind exited {done.returncode} in {tree}:\n{done.stderr[-2000:]}")
    totals = {}
    for name, pattern in CACHEGRIND_SUMMARY.items():
        found = pattern.search(done.stderr)
        if found is not None:
            totals[name] = int(found.groups()[-1].replace(",", ""))
    return totals
