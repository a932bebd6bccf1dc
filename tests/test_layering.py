"""The one-way flow of docs/ARCHITECTURE.md, checked on the source: every import of every module (ast).

engine -> facts -> exporter -> views -> /metrics; any source -> bridge -> subscribers. An import
against that flow is a failing test, not a sentence in a document.
"""

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fakeai", "exporter", "bridge")


@dataclass(frozen=True)
class Rule:
    importer: str
    """A module prefix the rule applies to."""
    forbidden: tuple[str, ...]
    why: str
    exempt: tuple[str, ...] = ()


RULES = (
    Rule("bridge", ("fakeai", "exporter"), "the bridge streams any registry; it knows no fakeai names"),
    Rule("exporter", ("fakeai",), "metric definitions take facts; they never reach back into the server"),
    Rule(
        "fakeai.engine",
        ("fakeai.routes", "fakeai.app", "fakeai.context", "fakeai.errors", "fakeai.settings", "starlette", "fastapi"),
        "the simulation takes plain values; HTTP and settings belong to the routes and the composition root",
    ),
    Rule("fakeai", ("fakeai.testing",), "product code never depends on the test helpers", exempt=("fakeai.testing",)),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, root: Path, *, runtime_module_level: bool = False) -> Iterator[tuple[str, int]]:
    """(imported module, line) of every import in ``path``. With ``runtime_module_level``, only the
    imports that run when the module is imported (not inside functions or ``if TYPE_CHECKING``)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(nodes: list[ast.stmt]) -> Iterator[tuple[str, int]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                yield from ((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                yield base, node.lineno
                # ``from package import module`` imports the submodule too.
                yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)
            if runtime_module_level:
                if isinstance(node, ast.If) and _is_type_checking(node):
                    yield from visit(node.orelse)
                elif isinstance(node, ast.If | ast.Try | ast.With):
                    for field in ("body", "orelse", "finalbody", "handlers"):
                        for child in getattr(node, field, []):
                            yield from visit(child.body if isinstance(child, ast.ExceptHandler) else [child])
            else:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        yield from visit([child])

    yield from visit(tree.body)


def sources(root: Path) -> dict[str, Path]:
    return {
        module_name(path, root): path
        for package in PACKAGES
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path) -> list[str]:
    """Every import that goes against ``RULES``, as ``path:line: importer imports X (why)``."""
    found = []
    for name, path in sources(root).items():
        for rule in RULES:
            if not _within(name, rule.importer) or any(_within(name, e) for e in rule.exempt):
                continue
            lines_found: set[int] = set()  # one finding per import statement
            for imported, line in imports(path, root):
                if line not in lines_found and any(_within(imported, f) for f in rule.forbidden):
                    lines_found.add(line)
                    found.append(f"{path.relative_to(root)}:{line}: {name} imports {imported} ({rule.why})")
    return found


def loaded_by_import(module: str, root: Path) -> set[str]:
    """What ``import module`` loads, statically: module-level imports followed through our own modules
    (parent packages included, as Python runs each package's ``__init__`` first)."""
    ours = sources(root)
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in seen:
                continue
            seen.add(name)
            if name in ours:
                todo.extend(imported for imported, _ in imports(ours[name], root, runtime_module_level=True))
    return seen


def test_the_flow_has_no_edge_against_it():
    assert violations(ROOT) == []


def test_no_engine_module_loads_http_or_settings_even_indirectly():
    for name in sources(ROOT):
        if _within(name, "fakeai.engine"):
            loaded = loaded_by_import(name, ROOT)
            assert not {m for m in loaded for f in ("starlette", "fastapi", "fakeai.settings") if _within(m, f)}, name


def test_settings_load_neither_the_engine_nor_starlette_nor_numpy():
    loaded = loaded_by_import("fakeai.settings", ROOT)
    # exporter.buckets (bounds and their validation, standard library only) is allowed; the metric
    # definitions and prometheus-client are not.
    heavy = {"numpy", "starlette", "fastapi", "fakeai.engine.scheduler", "exporter.metrics", "prometheus_client"}
    assert not loaded & heavy, sorted(loaded & heavy)
    assert "fakeai.engine.faults" in loaded  # the walk does follow our own imports


@pytest.mark.parametrize(
    ("module", "line"),
    [
        ("bridge/extra.py", "from fakeai.app import create_app\n"),
        ("bridge/extra.py", "import exporter.metrics\n"),
        ("exporter/extra.py", "def f():\n    from fakeai import settings\n"),
        ("fakeai/engine/extra.py", "from starlette.requests import Request\n"),
        ("fakeai/engine/extra.py", "from ..routes import lifecycle\n"),
        ("fakeai/engine/extra.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import fakeai.settings\n"),
        ("fakeai/tools/extra.py", "from fakeai.testing import Metrics\n"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, module, line):
    for package in PACKAGES:  # an empty tree of our packages, plus the one offending module
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    target = tmp_path / module
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / "__init__.py").touch()
    target.write_text(line)
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].startswith(module), found


def test_the_walk_sees_a_heavy_import_added_to_settings(tmp_path):
    for package in ("fakeai", "fakeai/engine"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "fakeai/settings.py").write_text("from fakeai.engine.faults import parse_mix\n")
    (tmp_path / "fakeai/engine/faults.py").write_text("import numpy as np\n")
    assert "numpy" in loaded_by_import("fakeai.settings", tmp_path)


def test_the_checked_tree_is_the_real_one():
    names = sources(ROOT)
    assert {"fakeai.engine.scheduler", "exporter.metrics", "bridge.hub"} <= set(names)
    assert sys.modules  # the checks never import what they read
