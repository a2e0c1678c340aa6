"""riverbed.model: a Llama-style dense decoder and a Mixtral-style MoE, with Hugging Face names.

>>> from riverbed.model import ModelConfig, build_model
>>> model = build_model(ModelConfig.preset("tiny"), seed=0)
>>> sorted(model.state_dict())[0]
'model.embed_tokens.weight'
"""

from __future__ import annotations

from riverbed.model.config import PRESETS, ModelConfig
from riverbed.model.transformer import ModelOutput, Transformer, build_model

__all__ = ["PRESETS", "ModelConfig", "ModelOutput", "Transformer", "build_model"]
