"""Tiny learnable data and a tiny transformers Llama, shared by the integration tests."""

from __future__ import annotations

import torch

VOCAB, SEQ = 32, 24


class Patterned(torch.utils.data.Dataset):
    """Random starts, then x[t+1] = x[t] + stride (mod V): learnable, so the loss falls."""

    def __init__(self, n: int = 512) -> None:
        g = torch.Generator().manual_seed(0)
        start = torch.randint(0, VOCAB, (n, 1), generator=g)
        stride = torch.randint(1, 4, (n, 1), generator=g)
        self.x = (start + stride * torch.arange(SEQ)) % VOCAB

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.x[i]}


def tiny_llama(seed: int = 0):
    """A ~30K-parameter LlamaForCausalLM built from a config (no download)."""
    import transformers

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # a tiny model: more threads only add contention
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ)
    return transformers.LlamaForCausalLM(cfg)
