import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clients import SERVER_FLAGS

from fakeai.testing import ServerProcess


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped tokenizer, written by the command users run."""
    folder = tmp_path_factory.mktemp("tokenizer")
    subprocess.run([sys.executable, "-m", "fakeai", "tokenizer", str(folder)], check=True, timeout=120)
    return folder


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with ServerProcess(SERVER_FLAGS) as started:
        yield started
