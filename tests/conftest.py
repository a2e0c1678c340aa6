"""Shared fixtures. Tests never write outside ``tmp_path``."""

from __future__ import annotations

import os

import pytest

# Keep CPU tests predictable on a 2-core machine.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
