"""A real Hugging Face Trainer output_dir (tiny Llama, 48 steps, a checkpoint every 8, an
evaluation every 4) built once per session, and a hash of a directory tree to prove a source
stays byte-identical."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).parent / "recipes"
TINY = Path(__file__).parents[1] / "integrations"


def tree_hash(root: Path) -> str:
    """Names, file bytes and link targets of everything under ``root`` (sorted)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(root)).encode())
            h.update(os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
    return h.hexdigest()


def train_hf(out: Path, *, max_steps: int = 48, scheduler: str = "constant_with_warmup", warmup: int = 4) -> Path:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    sys.path.insert(0, str(TINY))
    import transformers
    from _tiny import Patterned, tiny_llama

    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=8, learning_rate=3e-3,
        lr_scheduler_type=scheduler, warmup_steps=warmup, logging_steps=4, save_steps=8, eval_strategy="steps",
        eval_steps=4, report_to=[], use_cpu=True, seed=0, include_num_input_tokens_seen=True, disable_tqdm=True)
    transformers.Trainer(model=tiny_llama(), args=args, train_dataset=Patterned(), eval_dataset=Patterned(64)).train()
    return out


@pytest.fixture(scope="session")
def hf_output(tmp_path_factory) -> Path:
    """A Trainer output_dir: checkpoint-8 .. checkpoint-48, each with trainer_state.json. Read only."""
    return train_hf(tmp_path_factory.mktemp("hf") / "hf_out")


@pytest.fixture
def recipe_env(monkeypatch):
    """Recipes import the tiny data of tests/integrations/_tiny.py and riverbed from this tree."""
    src = str(Path(__file__).parents[2] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TINY), src, os.environ.get("PYTHONPATH", "")]))
    return lambda name: f"{sys.executable} {RECIPES / name} {{fork}} {{schedule}} {{out}}"
