"""The client lane's shared parts: the server the clients measure, and the published benchmark clients,
each in a virtual environment of its own that the lane creates once and reuses, outside the checkout
(``FAKEAI_CLIENT_VENVS``, default ``~/.cache/fakeai/clients``), named by the client, its pinned
requirements and this Python: a second run on the same machine installs nothing, and a change of pins
makes a new one."""

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

MODEL = "m"
# TTFT = 510 ms of API overhead + at most two 10 ms engine steps: at the bottom of the server's (0.5, 0.75]
# bucket. A client's TTFT is the server's plus its own time to send and to parse, which for GuideLLM on a
# busy 2-core CI machine reached 30-50 ms at p90 (it failed a run when the bucket was (0.1, 0.15] with 20 ms
# to spare); 220 ms above leaves room for four times that.
SERVER_FLAGS = ("--models", MODEL, "--overhead-ms", "510", "--itl-ms", "10", "--itl-jitter", "0")
SERVER_FLAGS += ("--prefill-ms-per-token", "0")

VENVS = Path(os.environ.get("FAKEAI_CLIENT_VENVS", Path.home() / ".cache" / "fakeai" / "clients"))
READY = "fakeai-ready"  # written last: a folder without it is an install that did not finish


def client_venv(name: str, requirements: Sequence[str]) -> Path:
    """The ``bin`` folder of a virtual environment holding ``requirements``, installed if missing."""
    key = hashlib.sha256("\n".join((sys.version, *requirements)).encode()).hexdigest()[:12]
    folder = VENVS / f"{name}-{key}"
    if not (folder / READY).exists():
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
        install = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements]
        result = subprocess.run(install, capture_output=True, text=True, timeout=1200)
        if result.returncode != 0:
            pytest.fail(f"installing {' '.join(requirements)} failed:\n{result.stderr[-3000:]}")
        (folder / READY).write_text("\n".join(requirements) + "\n")
    return folder / "bin"
