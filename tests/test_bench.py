"""The benchmarks cannot rot unnoticed: every script in bench/ takes --smoke, `make bench-smoke`
runs every one of them, and CI runs `make bench-smoke` (a bench that breaks fails CI)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _make_target(name: str) -> str:
    text = (ROOT / "Makefile").read_text()
    m = re.search(rf"^{re.escape(name)}:.*\n((?:\t.*\n)+)", text, re.M)
    assert m, f"Makefile has no {name} target"
    return m.group(1)


def test_every_bench_script_has_a_smoke_size():
    scripts = sorted((ROOT / "bench").glob("*.py"))
    assert len(scripts) >= 7
    missing = [p.name for p in scripts if '"--smoke"' not in p.read_text()]
    assert not missing, f"bench scripts without --smoke: {missing}"


def test_bench_smoke_runs_every_script_and_ci_runs_it():
    recipe = _make_target("bench-smoke")
    assert "for f in bench/*.py" in recipe and "$$f --smoke" in recipe and "set -e" in recipe
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make bench-smoke" in ci
    assert ci.index("make bench-smoke") > ci.index("make venv")
