"""Property-based fuzzing of what users hand riverbed: run manifests, branch names, CLI numbers, merge
recipes and output paths. For every generated input: exit code 0 or 2, no traceback, and every file
the user had is byte-identical afterwards (new outputs may appear only on exit 0).

Each property runs twice: a few examples in the default suite (``FAST``, a second or two in all) and
many in the slow tier (``THOROUGH``; ``make test-slow``, 25 examples each with ``RIVERBED_BOUNDED=1``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from riverbed.checkpoints import layout
from riverbed.checkpoints.outputs import _run_entry
from riverbed.cli.main import main
from riverbed.errors import RunError
from runs.helpers import fake_checkpoint, make_tree

FAST = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
THOROUGH = settings(FAST, max_examples=25 if os.environ.get("RIVERBED_BOUNDED") else 400, derandomize=False)

B100 = "linear-from100-len20"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``riverbed ARGV`` in this process: (exit code, stderr); an exception escaping main is a failure."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


def assert_safe(argv: list[str], root: Path, *, may_write: bool = True) -> int:
    """Run ARGV; exit 0 or 2, no traceback, every file under ``root`` that existed is unchanged."""
    before = _files(root)
    rc, err = run_cli(argv)
    assert rc in (0, 2), (argv, rc, err)
    assert "Traceback" not in err, err
    after = _files(root)
    assert {k: after.get(k) for k in before} == before, f"{argv} changed the user's files"
    if rc == 2 or not may_write:
        assert set(after) == set(before), f"{argv} left files behind: {set(after) - set(before)}"
    return rc


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """One run tree (main + two finished decay branches) and two tiny checkpoints, copied per example."""
    root = tmp_path_factory.mktemp("fuzz")
    run = make_tree(root / "r")
    fake_checkpoint(run.path, B100, 120, loss=3.0)
    for i in range(2):
        d = root / f"c{i}"
        d.mkdir()
        save_file({"w": np.full((4, 4), float(i + 1), dtype=np.float32)}, str(d / layout.MODEL_FILE))
    return root


@contextlib.contextmanager
def workspace(template: Path):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "w"
        shutil.copytree(template, root)
        yield root


# ---- strategies ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
MANIFEST_KEYS = [("format",), ("config",), ("model",), ("model", "n_params"), ("model", "flops_per_token"), ("branches",),
                 *[("branches", b, k) for b in ("main", B100) for k in
                   ("name", "kind", "parent", "status", "schedule", "fork", "progress", "final", "milestones", "events",
                    "pid", "host", "job", "error", "created")],
                 *[("branches", B100, p, k) for p in ("fork", "final") for k in
                   ("step", "tokens", "flops", "eval_loss", "checkpoint", "eval_loss_nonfinite")]]
edits = st.lists(st.tuples(st.sampled_from(MANIFEST_KEYS), json_values), min_size=1, max_size=3)
number_text = st.one_of(st.text(alphabet="0123456789eE.+-_KMGBTkmgt ,", max_size=12), st.text(max_size=8),
                        st.integers(min_value=-(2**80), max_value=2**80).map(str),
                        st.floats(allow_nan=True).map(repr))
path_parts = st.lists(st.sampled_from(["..", ".", "r", "run.json", "config.toml", ".lock", "branches", "main",
                                       "checkpoints", "step_0000000100", "state.json", "model.safetensors", "c0",
                                       "out.json", "x", "link"]), min_size=1, max_size=6)
names = st.text(max_size=12) | st.sampled_from(["", ".", "..", "/", "../main", "main/..", ".x", "a/b", "x" * 101, "\x00"])
recipes = st.dictionaries(st.sampled_from(["method", "inputs", "weights", "alpha", "order", "dtype", "steps", "ema_form",
                                           "accumulate", "max_shard_size", "wma_by", "format"]),
                          json_values | st.just(["c0", "c1"]) | st.sampled_from(["sma", "ema", "wma", "weights"]),
                          max_size=6)


def _set(doc: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(doc, dict) or not isinstance(doc.get(key), dict):
            return
        doc = doc[key]
    if isinstance(doc, dict):
        doc[path[-1]] = value


# ---- properties ----------------------------------------------------------------------------------------


@pytest.fixture
def ws(template):
    return lambda: workspace(template)


def _manifest(ws, changes) -> None:
    with ws() as root:
        path = root / "r" / layout.MANIFEST
        doc = json.loads(path.read_text())
        for key, value in changes:
            _set(doc, key, value)
        path.write_text(json.dumps(doc))  # NaN/Infinity too: Python's json reads them back
        for argv in (["ls", str(root / "r")], ["ls", str(root / "r"), "--json"]):
            assert_safe(argv, root, may_write=False)


@FAST
@given(edits)
def test_fuzz_manifest(ws, changes):
    _manifest(ws, changes)


@pytest.mark.slow
@THOROUGH
@given(edits)
def test_fuzz_manifest_thorough(ws, changes):
    _manifest(ws, changes)


def _branch_name(ws, name) -> None:
    with ws() as root:
        run = root / "r"
        try:
            d = layout.branch_dir(run, name)
        except RunError:
            d = None
        if d is not None:  # a valid name is one visible child of RUN/branches
            assert d.parent == run / layout.BRANCHES and d.name == name and not name.startswith(".")
        if name in ("main", B100, "linear-from300-len60"):
            return
        assert assert_safe(["rm", str(run), name], root) == 2
        assert assert_safe(["rm", str(run), name, "--recursive"], root) == 2


@FAST
@given(names)
def test_fuzz_branch_names(ws, name):
    _branch_name(ws, name)


@pytest.mark.slow
@THOROUGH
@given(names)
def test_fuzz_branch_names_thorough(ws, name):
    _branch_name(ws, name)


def _numbers(ws, texts) -> None:
    a, b = texts
    with ws() as root:
        for argv in (["plan", "--budgets", a, "--warmup", b],
                     ["schedule", "values", "--type", "wsd", "--steps", a, "--decay-steps", b],
                     ["merge", str(root / "m"), str(root / "c0"), str(root / "c1"), "--weights", f"{a},{b}", "--dry-run"],
                     ["plan", "--budgets", "100,200", "--tokens-per-step", a, "--n-params", b]):
            assert_safe(argv, root, may_write=False)


@FAST
@given(st.tuples(number_text, number_text))
def test_fuzz_cli_numbers(ws, texts):
    _numbers(ws, texts)


@pytest.mark.slow
@THOROUGH
@given(st.tuples(number_text, number_text))
def test_fuzz_cli_numbers_thorough(ws, texts):
    _numbers(ws, texts)


def _recipe(ws, recipe) -> None:
    with ws() as root:
        for name, text in (("r.json", json.dumps(recipe)), ("r.toml", None)):
            if text is None:
                from riverbed.errors import ConfigError
                from riverbed.toml_writer import dumps_toml
                try:
                    text = dumps_toml(recipe)
                except ConfigError:
                    continue
            (root / name).write_text(text)
            cwd = os.getcwd()
            os.chdir(root)  # recipe inputs are relative: c0, c1
            try:
                assert_safe(["merge", str(root / "m"), "--recipe", str(root / name), "--no-progress"], root)
            finally:
                os.chdir(cwd)
            shutil.rmtree(root / "m", ignore_errors=True)
            (root / name).unlink()


@FAST
@given(recipes)
def test_fuzz_recipes(ws, recipe):
    _recipe(ws, recipe)


@pytest.mark.slow
@THOROUGH
@given(recipes)
def test_fuzz_recipes_thorough(ws, recipe):
    _recipe(ws, recipe)


def _output_path(ws, parts) -> None:
    with ws() as root:
        (root / "link").symlink_to(root / "r" / layout.MANIFEST)
        out = str(root.joinpath(*parts))
        # never outside the sandbox: "../.." from it would write into the real filesystem
        assume(os.path.realpath(out).startswith(str(root.resolve()) + os.sep))
        guarded = {d: set(_files(root / d)) for d in ("r", "c0", "c1")}
        for argv in (["plan", "--budgets", "100,200", "-o", out],
                     ["ls", str(root / "r"), "--plot", out + ".png"],
                     ["merge", out, str(root / "c0"), str(root / "c1"), "--no-progress"]):
            assert_safe(argv, root)
            # an output never lands in the run tree or in a checkpoint, even as a new file; in the run directory
            # outside the run's own entries it may (report.html beside run.json, plots/loss.png: checkpoints.outputs)
            new = {d: set(_files(root / d)) - guarded[d] for d in guarded}
            assert not new["c0"] and not new["c1"], (argv, new)
            assert all(_run_entry(Path(f).parts[0]) is None for f in new["r"]), (argv, new)


@FAST
@given(path_parts)
@example(["r", "r", ".."])  # ls --plot RUN/r/...png: a new folder in the run, outside its own entries (allowed)
def test_fuzz_output_paths(ws, parts):
    _output_path(ws, parts)


@pytest.mark.slow
@THOROUGH
@given(path_parts)
def test_fuzz_output_paths_thorough(ws, parts):
    _output_path(ws, parts)
