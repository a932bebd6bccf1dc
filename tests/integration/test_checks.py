"""scripts/check (run by .ci/run before the tests) fails on a lint, format or type finding."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_checks_before_the_tests():
    steps = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if line.strip()]
    assert steps.index("scripts/check") < steps.index("python -m pytest")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what scripts/check reads: the packages, the tests, pyproject.toml and the script."""
    for part in ("fakeai", "exporter", "bridge", "tests", "benchmarks", "examples", "scripts"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tree / "scripts/check")], capture_output=True, text=True, timeout=300)


def test_the_tree_as_committed_passes(tree):
    result = check(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "appended", "finding"),
    [
        ("bridge/math.py", "\nimport os\n", "F401"),  # lint: unused import
        ("bridge/math.py", "\nx = [1,2 ,3]\n", "would be reformatted"),  # format
        ("exporter/facts.py", "\n\ndef f() -> int:\n    return 'text'\n", "exporter/facts.py"),  # types
    ],
)
def test_a_finding_fails_the_checks(tree, module, appended, finding):
    with (tree / module).open("a") as source:
        source.write(appended)
    result = check(tree)
    assert result.returncode != 0 and finding in result.stdout + result.stderr
