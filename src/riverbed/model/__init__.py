"""riverbed.model: a Llama-style dense decoder and a Mixtral-style MoE, with Hugging Face names.

``ModelConfig`` imports without torch (configs and manifests stay light); the modules load on use.

>>> from riverbed.model import ModelConfig, build_model
>>> model = build_model(ModelConfig.preset("tiny"), seed=0)
>>> sorted(model.state_dict())[0]
'model.embed_tokens.weight'
"""

from __future__ import annotations

import importlib
from typing import Any

from riverbed.model.config import PRESETS, ModelConfig

__all__ = ["PRESETS", "ModelConfig", "ModelOutput", "Transformer", "build_model"]

_LAZY = {"ModelOutput": "riverbed.model.transformer", "Transformer": "riverbed.model.transformer",
         "build_model": "riverbed.model.transformer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'riverbed.model' has no attribute {name!r}")
