"""Tiny real runs for the executor tests (the fixtures of tests/runs), and the backends' presence.

CI installs ray and submitit (.ci/run) and sets RIVERBED_REQUIRE_EXECUTORS=1: there a missing
backend fails its tests instead of skipping them.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.runs.conftest import _tiny_main_master, tiny_config, tiny_data, tiny_main  # noqa: F401 - fixtures


def need(module: str, extra: str) -> None:
    """Skip (or, in CI, fail) a test whose backend library is not installed."""
    if importlib.util.find_spec(module) is None:
        why = f"{module} is not installed (pip install 'riverbed[{extra}]')"
        if os.environ.get("RIVERBED_REQUIRE_EXECUTORS"):
            pytest.fail(why + " but RIVERBED_REQUIRE_EXECUTORS is set")
        pytest.skip(why)


def needs_no_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA (the job's failure is train.device='cuda')")


def break_device(run_dir) -> None:
    """Make every job of the run fail inside its process: train.device='cuda' where there is none
    (a job sent to a node without a GPU)."""
    import re

    from riverbed.checkpoints import layout

    cfg = run_dir / layout.CONFIG
    text, n = re.subn(r'(?m)^device = ".*"$', 'device = "cuda"', cfg.read_text())
    assert n == 1
    cfg.write_text(text)
