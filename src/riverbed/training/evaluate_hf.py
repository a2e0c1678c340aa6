"""Held-out loss of Hugging Face model directories built from their own ``config.json``.

``riverbed eval HF_DIR --data FILE`` needs no riverbed config: the model is whatever
transformers' Auto classes build from the directory (``AutoModelForCausalLM.from_pretrained``,
the ``hf`` extra), the data is read by the loaders of ``[data]`` (a text file or folder, a token
``.bin``, a nanoGPT ``train.bin``/``val.bin`` folder) and evaluated on its held-out split by the
one held-out evaluator (:func:`riverbed.training.evaluate.evaluate_stats`): the model's logits
at every position against the next token, the same loss riverbed's trainer logs.

When a riverbed config is given as well (``--run`` / ``--config``), a directory's
``config.json`` must describe the same model: :func:`check_hf_config` names the first key on
which they differ (``tie_word_embeddings`` vs ``model.tie_embeddings``, ``rms_norm_eps`` vs
``model.norm_eps``, ...) instead of evaluating a model that is not the checkpoint's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from riverbed.config import TrainConfig
from riverbed.data import heldout_batches, load_dataset
from riverbed.data.config import DataConfig
from riverbed.errors import CheckpointError, ConfigError
from riverbed.extras import missing_extra
from riverbed.io.strict_json import read_json
from riverbed.model.config import ModelConfig
from riverbed.model.hf import config_from_hf

CONFIG = "config.json"
# riverbed ModelConfig field -> the config.json key of the same quantity
HF_KEYS = {"vocab_size": "vocab_size", "d_model": "hidden_size", "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads",
           "n_kv_heads": "num_key_value_heads", "d_ff": "intermediate_size", "rope_theta": "rope_theta", "norm_eps": "rms_norm_eps",
           "tie_embeddings": "tie_word_embeddings", "n_experts": "num_local_experts", "top_k": "num_experts_per_tok"}


def hf_config_path(path: str | Path) -> Path | None:
    """The ``config.json`` of a checkpoint directory (or of a file's directory), if it has one."""
    p = Path(path)
    cfg = (p if p.is_dir() else p.parent) / CONFIG
    return cfg if cfg.is_file() else None


def check_hf_config(path: str | Path, model: ModelConfig) -> None:
    """Raise ConfigError naming the first key on which ``path``'s config.json and ``model`` differ."""
    cfg_path = hf_config_path(path)
    if cfg_path is None:
        return
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{cfg_path}: unreadable config.json ({exc})") from exc
    try:
        theirs = config_from_hf(raw, str(cfg_path))
    except CheckpointError as exc:
        raise ConfigError(f"{exc}: the checkpoint is not the riverbed model of the given config "
                          "(evaluate it without --run/--config, with --data FILE, to use its own architecture)") from None
    for f, key in HF_KEYS.items():
        a, b = getattr(theirs, f), getattr(model, f)
        if a != b:
            raise ConfigError(f"{cfg_path}: {key} = {json.dumps(a)}, but the riverbed config has model.{f} = {json.dumps(b)}; "
                              "evaluating would not be this checkpoint's model")


def data_config(data: str | Path, tokenizer: str | None, base: DataConfig | None = None, model_dir: Path | None = None) -> DataConfig:
    """The ``[data]`` section that reads ``data``: ``base`` with its source replaced, the tokenizer
    given, else the model directory's ``tokenizer.json``, else ``base``'s (byte by default)."""
    if not Path(data).exists():
        raise ConfigError(f"--data {data}: no such file or folder")
    if tokenizer is None and model_dir is not None and (model_dir / "tokenizer.json").is_file():
        tokenizer = str(model_dir / "tokenizer.json")
    base = base or DataConfig()
    return dataclasses.replace(base, source=str(data), **({"tokenizer": tokenizer} if tokenizer else {}))


class CausalLM(torch.nn.Module):
    """A transformers causal LM behind riverbed's evaluation interface: ``model(x, y)`` -> loss
    (mean next-token cross-entropy of the logits at each position against ``y``) and logits."""

    def __init__(self, hf_model: torch.nn.Module) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> SimpleNamespace:
        logits = self.hf(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.reshape(-1), ignore_index=-100)
        return SimpleNamespace(loss=loss, logits=logits)


def load_hf_model(path: str | Path, device: torch.device) -> CausalLM:
    """The directory's model, built by transformers from its config.json, in float32, eval mode."""
    try:
        import transformers  # lazy: the hf extra, needed only here
    except ModuleNotFoundError as exc:
        raise (missing_extra(exc, "riverbed eval of a Hugging Face directory") or exc) from None
    p = Path(path)
    if hf_config_path(p) is None or not p.is_dir():
        raise ConfigError(f"{path}: not a Hugging Face model directory (no config.json): give --run RUN or --config CONFIG")
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(p), dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: transformers cannot build a causal LM from it ({type(exc).__name__}: {exc})") from exc
    return CausalLM(model).to(device).eval()


def with_overrides(cfg: Any, data_file: str | Path | None, tokenizer: str | None, seq_len: int | None,
                   eval_batches: int | None, batch_size: int | None) -> Any:
    """``cfg`` (a RunConfig) with ``--data`` / ``--tokenizer`` and the evaluation geometry replaced."""
    if data_file is not None:
        cfg = dataclasses.replace(cfg, data=data_config(data_file, tokenizer, cfg.data))
    elif tokenizer is not None:
        raise ConfigError("evaluate: --tokenizer goes with --data FILE")
    train = {k: v for k, v in (("seq_len", seq_len), ("eval_batches", eval_batches), ("eval_batch_size", batch_size)) if v is not None}
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train)) if train else cfg


def hf_heldout(paths: Sequence[str | Path], data_file: str | Path, tokenizer: str | None, seq_len: int | None,
               eval_batches: int | None, batch_size: int | None) -> tuple[Any, list[tuple[torch.Tensor, torch.Tensor]]]:
    """(dataset, the fixed held-out batches) of ``data_file`` for Hugging Face directories ``paths``:
    sequences of ``seq_len`` (default 128, at most every model's max_position_embeddings), every
    token id inside every model's vocabulary."""
    defaults = TrainConfig()
    configs = []
    for path in paths:
        cfg_path = hf_config_path(path)
        if cfg_path is None or not Path(path).is_dir():
            raise ConfigError(f"{path}: neither a riverbed checkpoint nor a Hugging Face directory with config.json; "
                              "give --run RUN or --config CONFIG (the model to load it into)")
        c = read_json(cfg_path, CheckpointError)
        if not isinstance(c, dict):
            raise CheckpointError(f"{cfg_path}: not a JSON object")
        configs.append(c)
    n_pos = min(int(c.get("max_position_embeddings") or 1 << 30) for c in configs)
    seq = seq_len or min(defaults.seq_len, n_pos)
    if seq > n_pos:
        raise ConfigError(f"--seq-len {seq} is beyond the models' max_position_embeddings ({n_pos})")
    data = data_config(data_file, tokenizer, None, Path(paths[0]))
    dataset = load_dataset(data)
    vocab = min(int(c.get("vocab_size") or 0) for c in configs)
    if dataset.vocab_size > vocab:
        raise ConfigError(f"--data {data.source}: token ids reach {dataset.vocab_size - 1} (tokenizer {data.tokenizer!r}), "
                          f"beyond the vocabulary of {', '.join(map(str, paths))} ({vocab}); give --tokenizer (the model's tokenizer.json)")
    return dataset, list(heldout_batches(dataset.heldout, seq, batch_size or defaults.batch_size, eval_batches or defaults.eval_batches))
