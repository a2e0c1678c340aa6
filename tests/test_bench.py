"""The benchmarks cannot rot unnoticed: every script in bench/ takes --smoke, `make bench-smoke`
runs every one of them, and CI runs `make bench-smoke` (a bench that breaks fails CI)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
    assert "bench/gpu.sh --dry" in recipe
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make bench-smoke" in ci
    assert ci.index("make bench-smoke") > ci.index("make venv")


def _gpu_bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_dry_report(path: Path, sections: tuple[str, ...]) -> dict:
    import json
    import math

    report = json.loads(path.read_text())
    assert report["format"] == "riverbed.bench.gpu/1" and report["dry"] is True
    assert set(sections) <= set(report["section_wall_s"])
    if "throughput" in sections:
        rows = report["throughput"]["rows"]
        assert set(rows) == {"riverbed", "bare", "bare+compile"}
        assert all(math.isfinite(r["tokens_per_s"]) and r["tokens_per_s"] > 0 for r in rows.values())
        assert report["throughput"]["riverbed_vs_bare"] > 0
    if "merge" in sections:
        assert report["merge"]["failed"] == [] and report["merge"]["riverbed_vs_floor"] > 0
    if "fsdp" in sections:
        assert report["fsdp"]["processes"] == 1 and report["fsdp"]["tokens_per_s"] > 0
    return report


def test_gpu_bench_dry_run_measures_throughput_and_merge_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    assert _gpu_bench().main(["--smoke", "--sections", "throughput,merge", "--out", str(out)]) == 0
    _check_dry_report(out, ("throughput", "merge"))


@pytest.mark.slow  # torchrun and its worker: two more interpreters importing torch
def test_gpu_sh_dry_runs_every_section(tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "bench" / "gpu.sh"), "--dry", "--out", str(out)], check=True, env=env, cwd=tmp_path)
    _check_dry_report(out, ("throughput", "merge", "fsdp"))


def test_gpu_peaks_are_looked_up_by_device_name():
    gpu = _gpu_bench()
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_tflops("NVIDIA H200") == 989.4
    assert gpu.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu.peak_tflops("Some Future GPU") is None
