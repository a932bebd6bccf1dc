"""``python -m fakeai ...`` with fakeai's per-request metric recording made no-ops, for
``throughput.py --without-metrics``: what the server costs without recording, to show recording's
share with sockets and uvicorn around it. Never a figure to quote as fakeai's own.

    python benchmarks/metrics_off_server.py server --port 8000 --no-delay
"""

import runpy
import sys

from inprocess import without_metrics  # puts this checkout first on sys.path

if __name__ == "__main__":
    without_metrics()
    sys.argv = ["fakeai", *sys.argv[1:]]
    runpy.run_module("fakeai", run_name="__main__", alter_sys=True)
