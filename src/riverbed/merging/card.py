"""The non-weight files of a merge output: the newest input's model files, a dtype-correct
``config.json`` and a model card that says what the merge is.

Only files that describe the *model* travel (config, generation config, tokenizer): a Trainer
checkpoint's ``trainer_state.json``, optimizer, scheduler and RNG files, and its ``README.md``,
describe one training state, not the merge, and are never copied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riverbed.errors import MergeError

CONFIG = "config.json"
MODEL_FILES = frozenset({
    CONFIG, "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "vocab.txt", "merges.txt",
    "chat_template.jinja", "chat_template.json",
})
# safetensors dtype -> the name transformers writes in config.json
TORCH_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def model_files(directory: Path | None) -> list[Path]:
    """The model files (config, generation config, tokenizer) of an input directory."""
    if directory is None:
        return []
    return [p for p in sorted(directory.iterdir()) if p.name in MODEL_FILES and p.is_file()]


def config_with_dtype(path: Path, dtype: str) -> bytes:
    """``config.json`` with its dtype set to ``dtype`` (a safetensors name, e.g. ``BF16``).

    transformers < 5 reads ``torch_dtype``, >= 5 ``dtype``: whichever is present is updated (both
    are written when neither is), so ``from_pretrained`` loads the merge in its own dtype.
    """
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MergeError(f"{path}: cannot update the dtype of an unreadable config ({exc})") from exc
    if not isinstance(config, dict):
        raise MergeError(f"{path}: config is not a JSON object")
    name = TORCH_NAMES[dtype]
    keys = [k for k in ("torch_dtype", "dtype") if k in config] or ["torch_dtype", "dtype"]
    for k in keys:
        config[k] = name
    return (json.dumps(config, indent=2, allow_nan=False) + "\n").encode("utf-8")


def model_card(recipe: dict[str, Any], labels: Sequence[str], weights: Sequence[float], steps: Sequence[int | None] | None) -> str:
    """A short ``README.md``: what was merged, with which weights, and how to replay it."""
    method = recipe["method"]
    extra = {"ema": f", alpha {recipe.get('alpha')}, {recipe.get('ema_form')} form", "wma": f", by {recipe.get('wma_by')}"}.get(method, "")
    lines = [
        "---", "library_name: transformers", "tags:", "- merge", "- riverbed", "---", "",
        "# Merged checkpoint", "",
        f"A weighted average of {len(labels)} checkpoints of one training run (`{method}`{extra}), "
        f"made with `riverbed merge` (riverbed {recipe.get('riverbed_version', '?')}). "
        f"Float tensors: {recipe.get('dtype') or 'the input dtype'}, accumulated in {recipe.get('accumulate')}.", "",
        "| # | weight | step | input |", "|---|---|---|---|",
    ]
    for i, (label, w) in enumerate(zip(labels, weights)):
        step = steps[i] if steps is not None and steps[i] is not None else "?"
        lines.append(f"| {i + 1} | {w:.6f} | {step} | `{label}` |")
    lines += ["", "The full recipe is `merge.json`; replay it with:", "", "```bash", "riverbed merge --recipe merge.json OUT", "```", ""]
    return "\n".join(lines)
