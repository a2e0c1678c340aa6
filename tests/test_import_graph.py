"""The import graph of src/riverbed has no cycles, counting imports inside functions too.

A cycle makes a module impossible to understand (or import) on its own; lazy imports inside
functions hide cycles from Python but not from the reader, so they count here. Edges are the
explicit imports only: ``import a.b`` / ``from a.b import c`` (``c`` a submodule or a name in
``a.b``); the implicit import of a parent package's ``__init__`` is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

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
