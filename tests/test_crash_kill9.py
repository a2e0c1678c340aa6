"""kill -9 at random instants during `riverbed train`, `merge`, `merge --overwrite` and `branch`.

Real subprocesses (``python -m riverbed.cli.main``), killed with SIGKILL after a random delay
drawn across the command's measured wall time. After each kill:

* no half-visible output: every visible checkpoint is complete and loads, a merge OUT is either
  absent or the complete merge (``--overwrite``: the old merge or the new one, never missing);
* inputs are byte-identical (merge inputs; the main branch under `riverbed branch`);
* run.json and metrics.jsonl are strict JSON (no bare NaN);
* running the same command again finishes, and the result is bitwise the uninterrupted run's,
  with no temporary left behind.

``RIVERBED_BOUNDED=1`` (CI's slow tier) keeps it to a handful of trials (well under a minute);
otherwise ``RIVERBED_KILL9_TRIALS`` (default 8) trials per command.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import riverbed
from riverbed.checkpoints import layout

pytestmark = pytest.mark.slow

BOUNDED = os.environ.get("RIVERBED_BOUNDED") == "1"
TRIALS = {"train": 1, "branch": 1, "merge": 2, "overwrite": 2} if BOUNDED else \
    dict.fromkeys(("train", "branch", "merge", "overwrite"), int(os.environ.get("RIVERBED_KILL9_TRIALS", "8")))
SEED = int(os.environ.get("RIVERBED_KILL9_SEED", "0"))

BRANCH = ["--from", "4", "--shape", "linear", "--length", "4", "--no-progress"]
BRANCH_NAME = "linear-from4-len4"


def _env() -> dict[str, str]:
    src = str(Path(riverbed.__file__).parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))


def cli(*args: str, cwd: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "riverbed.cli.main", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.returncode, time.perf_counter() - t0


def killed(args: list[str], cwd: Path, delay: float) -> int | None:
    """Start the command, SIGKILL it after ``delay`` s; its exit code if it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "riverbed.cli.main", *args], cwd=cwd, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None


def strict(text: str):
    def bad(c):
        raise AssertionError(f"bare {c} in JSON")

    return json.loads(text, parse_constant=bad)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != layout.WRITER_LOCK}


def tensors(path: Path) -> dict[str, np.ndarray]:
    out = {}
    for f in (layout.MODEL_FILE, layout.OPTIMIZER_FILE):
        out.update({f"{f}:{k}": v for k, v in load_file(str(path / f)).items()})
    return out


def assert_bitwise(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and ta[k].tobytes() == tb[k].tobytes(), k


def check_run_consistent(run: Path) -> None:
    """Nothing half-visible: strict JSON and complete, loadable checkpoints only."""
    if (run / layout.MANIFEST).exists():
        strict((run / layout.MANIFEST).read_text())
    for branch_dir in (run / layout.BRANCHES).glob("*") if (run / layout.BRANCHES).is_dir() else []:
        metrics = branch_dir / layout.METRICS
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            for line in lines[:-1]:  # the last line may be torn by the kill; the resume drops it
                strict(line)
        ckpts = branch_dir / layout.CHECKPOINTS
        for d in ckpts.iterdir() if ckpts.is_dir() else []:
            if d.name.startswith("."):
                continue  # a temporary: invisible to riverbed
            assert (d / layout.STATE_FILE).is_file(), f"half-visible checkpoint {d}"
            strict((d / layout.STATE_FILE).read_text())
            tensors(d)


def no_temporaries(root: Path) -> None:
    left = [p for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert not left, left


@pytest.fixture(scope="module")
def ref(tiny_toml, tmp_path_factory) -> dict:
    """The uninterrupted references: main to step 8, the decay branch, two merges."""
    root = tmp_path_factory.mktemp("kill9-ref")
    (root / "t.toml").write_text(tiny_toml.replace("max_steps = 4", "max_steps = 8"))
    _, t_train = cli("train", "t.toml", "--run", "r", "--no-progress", cwd=root)
    _, t_branch = cli("branch", "r", *BRANCH, cwd=root)
    inputs = [str(layout.checkpoint_dir(root / "r", "main", s)) for s in (2, 4, 6, 8)]
    _, t_merge = cli("merge", "m-sma", *inputs, cwd=root)
    cli("merge", "m-ema", *inputs, "--method", "ema", "--alpha", "0.5", cwd=root)
    return {"root": root, "inputs": inputs, "t_train": t_train, "t_branch": t_branch, "t_merge": t_merge}


def test_kill9_during_train_then_resume_is_bitwise(tiny_toml, ref, tmp_path):
    rng = random.Random(SEED)
    want = layout.checkpoint_dir(ref["root"] / "r", "main", 8)
    for trial in range(TRIALS["train"]):
        work = tmp_path / f"t{trial}"
        work.mkdir()
        (work / "t.toml").write_text(tiny_toml.replace("max_steps = 4", "max_steps = 8"))
        args = ["train", "t.toml", "--run", "r", "--no-progress"]
        killed(args, work, rng.uniform(0.3, 1.0) * ref["t_train"])
        check_run_consistent(work / "r")
        cli(*args, cwd=work)
        check_run_consistent(work / "r")
        assert_bitwise(layout.checkpoint_dir(work / "r", "main", 8), want)
        strict((work / "r" / layout.MANIFEST).read_text())
        no_temporaries(work / "r")


def test_kill9_during_branch_keeps_main_and_resumes_bitwise(ref, tmp_path):
    rng = random.Random(SEED + 1)
    want = layout.checkpoint_dir(ref["root"] / "r", BRANCH_NAME, 8)
    for trial in range(TRIALS["branch"]):
        work = tmp_path / f"b{trial}"
        shutil.copytree(ref["root"] / "r" / layout.BRANCHES / "main", work / "r" / layout.BRANCHES / "main")
        for f in (layout.MANIFEST, layout.CONFIG):
            shutil.copy2(ref["root"] / "r" / f, work / "r" / f)
        m = json.loads((work / "r" / layout.MANIFEST).read_text())
        m["branches"].pop(BRANCH_NAME)
        (work / "r" / layout.MANIFEST).write_text(json.dumps(m))
        main_before = digest(work / "r" / layout.BRANCHES / "main")
        killed(["branch", "r", *BRANCH], work, rng.uniform(0.3, 1.0) * ref["t_branch"])
        check_run_consistent(work / "r")
        assert digest(work / "r" / layout.BRANCHES / "main") == main_before  # the parent is only read
        branches = strict((work / "r" / layout.MANIFEST).read_text())["branches"]
        if branches.get(BRANCH_NAME, {}).get("status") != "finished":  # finished before the kill: nothing to resume
            cli("branch", "r", *BRANCH, cwd=work)
        assert_bitwise(layout.checkpoint_dir(work / "r", BRANCH_NAME, 8), want)
        assert digest(work / "r" / layout.BRANCHES / "main") == main_before
        no_temporaries(work / "r")


def _merge_outcome(out: Path, refs: dict[str, Path]) -> str:
    """Which complete merge OUT is ('absent' if none); anything partial fails."""
    if not os.path.lexists(out):
        return "absent"
    got = {k: v.tobytes() for k, v in load_file(str(out / layout.MODEL_FILE)).items()}
    for name, path in refs.items():
        if got == {k: v.tobytes() for k, v in load_file(str(path / layout.MODEL_FILE)).items()} \
                and (out / "merge.json").is_file():
            return name
    raise AssertionError(f"{out} is not a complete merge")


@pytest.mark.parametrize("overwrite", [False, True], ids=["merge", "overwrite"])
def test_kill9_during_merge_out_is_old_or_new_inputs_untouched(ref, tmp_path, overwrite):
    rng = random.Random(SEED + 2 + overwrite)
    root = ref["root"]
    inputs_before = {p: digest(Path(p)) for p in ref["inputs"]}
    refs = {"sma": root / "m-sma", "ema": root / "m-ema"}
    for trial in range(TRIALS["overwrite" if overwrite else "merge"]):
        out = tmp_path / f"out{trial}"
        args = ["merge", str(out), *ref["inputs"]]
        if overwrite:
            shutil.copytree(root / "m-ema", out)
            args.append("--overwrite")
        killed(args, tmp_path, rng.uniform(0.2, 1.2) * ref["t_merge"])
        outcome = _merge_outcome(out, refs)
        assert outcome in (("ema", "sma") if overwrite else ("absent", "sma")), outcome
        assert {p: digest(Path(p)) for p in ref["inputs"]} == inputs_before
        # The next run in that place completes it and removes the killed one's temporaries.
        cli(*args[:1], str(out), *ref["inputs"], *(["--overwrite"] if outcome != "absent" else []), cwd=tmp_path)
        assert _merge_outcome(out, refs) == "sma"
        assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
