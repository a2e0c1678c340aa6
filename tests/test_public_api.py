"""The names `riverbed` exports: `riverbed.predict` is always the package, and the exported
`load_checkpoint` is the trainer's own loader (NaN weights and unreadable sharded formats refused)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import riverbed
from riverbed.errors import CheckpointError
from riverbed.model import build_model


def test_riverbed_predict_is_the_package_before_and_after_it_is_imported():
    # a fresh interpreter: before, `riverbed.predict` was scaling's function until the package was imported
    code = ("import riverbed, types; first = riverbed.predict; import riverbed.predict.laws; "
            "assert isinstance(first, types.ModuleType) and first is riverbed.predict, first; print(first.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "riverbed.predict"


def test_every_exported_name_resolves():
    for name in riverbed.__all__:
        assert getattr(riverbed, name) is not None, name


def _checkpoint(tmp_path, tiny_model_config, *, poison: bool):
    model = build_model(tiny_model_config)
    if poison:
        with torch.no_grad():
            next(model.parameters())[0] = float("nan")
    opt = torch.optim.AdamW(model.parameters())
    return riverbed.save_checkpoint(tmp_path / "ckpt", model, opt, {"step": 3, "tokens": 96})


def test_load_checkpoint_loads_and_returns_the_state(tmp_path, tiny_model_config):
    path = _checkpoint(tmp_path, tiny_model_config, poison=False)
    model = build_model(tiny_model_config)
    assert riverbed.load_checkpoint(path, model).step == 3
    assert riverbed.load_checkpoint(path, None).step == 3


def test_load_checkpoint_refuses_nan_weights_like_the_trainer(tmp_path, tiny_model_config):
    path = _checkpoint(tmp_path, tiny_model_config, poison=True)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor \S+ holds NaN/inf"):
        riverbed.load_checkpoint(path, build_model(tiny_model_config))


def test_load_checkpoint_refuses_a_dcp_folder_naming_why(tmp_path, tiny_model_config):
    path = tmp_path / "dcp"
    path.mkdir()
    (path / "__0_0.distcp").write_bytes(b"\0" * 8)
    (path / ".metadata").write_bytes(b"\0" * 8)
    with pytest.raises(CheckpointError, match=r"torch\.distributed\.checkpoint's default format"):
        riverbed.load_checkpoint(path, build_model(tiny_model_config))
