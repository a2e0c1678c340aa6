"""The import graph of src/riverbed has no cycles, counting imports inside functions too, and
its packages keep their layers (docs/architecture.md).

A cycle makes a module impossible to understand (or import) on its own; lazy imports inside
functions hide cycles from Python but not from the reader, so they count here. Edges are the
explicit imports only: ``import a.b`` / ``from a.b import c`` (``c`` a submodule or a name in
``a.b``); the implicit import of a parent package's ``__init__`` is not an edge.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_graph(src: Path = SRC, root: str = "riverbed") -> dict[str, set[str]]:
    files = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                # `import riverbed.a.b` names the deepest module that exists
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith(root):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


#: Cycles being removed by a change in flight, each with who removes it. Strict: a listed cycle
#: that is gone fails the test too, so this list only ever shrinks to empty.
KNOWN: list[list[str]] = []


def test_no_import_cycles() -> None:
    found = cycles(module_graph())
    new = [c for c in found if c not in KNOWN]
    assert not new, "import cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c) for c in new)
    gone = [c for c in KNOWN if c not in found]
    assert not gone, f"no longer a cycle, remove it from KNOWN: {gone}"


def test_detector_finds_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from p import b\n")
    (pkg / "b.py").write_text("from p.a import f\n")
    (pkg / "c.py").write_text("import p.a\n")
    assert cycles(module_graph(tmp_path, "p")) == [["p.a", "p.b"]]


# --- package layers ---------------------------------------------------------------------------
# The layers themselves are the import-linter contract in pyproject.toml (`lint-imports`, run by
# `make test`). These tests check that the contract is real (it fails on an upward import) and the
# two rules it cannot state: no cycle between packages, and nothing inside imports the root package.

ROOT = Path(__file__).resolve().parents[1]


def package_of(module: str) -> str:
    """``riverbed.runs.fork`` -> ``riverbed.runs``; a top-level module is its own package."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {package_of(m): set() for m in graph}
    for mod, targets in graph.items():
        for t in targets:
            if package_of(t) != package_of(mod) and t != "riverbed":
                out[package_of(mod)].add(package_of(t))
    return out


def test_no_package_cycles() -> None:
    found = cycles(package_graph(module_graph()))
    assert not found, "package cycles (function-level imports included):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_nothing_inside_imports_the_root_package() -> None:
    # riverbed/__init__ lazily exports names from every layer: importing it from inside would
    # reach the top from the bottom (the version lives in riverbed.version for that reason).
    importers = sorted(m for m, targets in module_graph().items() if "riverbed" in targets)
    assert not importers, f"modules importing the root package `riverbed`: {importers}"


def _lint_imports(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(lint), "--no-cache", "--no-logo", str(config)], cwd=config.parent, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def contract_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of src/riverbed and of the contract (pyproject.toml) to break on purpose."""
    base = tmp_path_factory.mktemp("layers")
    shutil.copytree(SRC / "riverbed", base / "src" / "riverbed", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", base / "pyproject.toml")
    return base / "src", base / "pyproject.toml"


def test_the_layers_contract_holds_on_a_copy(contract_copy: tuple[Path, Path]) -> None:
    src, config = contract_copy
    done = _lint_imports(src, config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_the_layers_contract_fails_on_an_upward_import(contract_copy: tuple[Path, Path]) -> None:
    src, config = contract_copy
    low = src / "riverbed" / "units.py"
    text = low.read_text(encoding="utf-8")
    # inside a function, as lazy imports are written: the contract counts them too
    low.write_text(text + "\n\ndef _upward() -> None:\n    import riverbed.cli.main  # noqa: F401\n", encoding="utf-8")
    try:
        done = _lint_imports(src, config)
    finally:
        low.write_text(text, encoding="utf-8")
    assert done.returncode != 0
    assert "BROKEN" in done.stdout
    assert "riverbed.units is not allowed to import riverbed.cli" in done.stdout, done.stdout
