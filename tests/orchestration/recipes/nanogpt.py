"""A nanoGPT-style training script (its own tiny GPT, plain AdamW, ckpt.pt files), in two modes:

    python nanogpt.py main OUT             train 24 iterations, keep ckpt_<iter>.pt every 8 and log.csv
    python nanogpt.py decay FORK SCHEDULE OUT   a decay branch from FORK's ckpt_*.pt (riverbed branch --command)

Checkpoints are nanoGPT's dict: {"model", "optimizer", "model_args", "iter_num", "best_val_loss"}.
"""

import csv
import math
import sys
from pathlib import Path

import torch
from torch import nn
from _tiny import SEQ, VOCAB, Patterned


class GPT(nn.Module):
    def __init__(self, n_embd: int = 32, n_layer: int = 2) -> None:
        super().__init__()
        self.wte = nn.Embedding(VOCAB, n_embd)
        self.wpe = nn.Embedding(SEQ, n_embd)
        self.h = nn.ModuleList(nn.TransformerEncoderLayer(n_embd, 4, 64, dropout=0.0, batch_first=True) for _ in range(n_layer))
        self.lm_head = nn.Linear(n_embd, VOCAB, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        mask = nn.Transformer.generate_square_subsequent_mask(idx.shape[1])
        for block in self.h:
            x = block(x, src_mask=mask, is_causal=True)
        return self.lm_head(x)


def loss_of(model: GPT, x: torch.Tensor) -> torch.Tensor:
    logits = model(x[:, :-1])
    return nn.functional.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1))


def train(model, opt, lr_at, start, end, out, every, rows):
    data, held_out = Patterned(512).x, Patterned(64).x
    for it in range(start, end):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        batch = data[(it * 8) % 512:(it * 8) % 512 + 8]
        loss = loss_of(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        done = it + 1
        row = {"iter": done, "lr": lr_at(it), "loss": loss.item(), "val_loss": ""}
        if done % 4 == 0:
            with torch.no_grad():
                row["val_loss"] = float(loss_of(model, held_out))
        rows.append(row)
        if done % every == 0 or done == end:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "model_args": {"n_embd": 32, "n_layer": 2},
                        "iter_num": done, "best_val_loss": row["val_loss"] or math.inf}, Path(out) / f"ckpt_{done}.pt")
    with open(Path(out) / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["iter", "lr", "loss", "val_loss"])
        w.writeheader()
        w.writerows(rows)


torch.manual_seed(0)
torch.set_num_threads(1)
if sys.argv[1] == "main":
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train(model, opt, lambda it: 3e-3 * min(1.0, (it + 1) / 4), 0, 24, out, 8, [])
else:
    from riverbed.schedules.branch_file import read_branch_schedule

    fork, schedule, out = sys.argv[2:5]
    b = read_branch_schedule(schedule)
    ckpt = torch.load(next(Path(fork).glob("*.pt")), weights_only=True)
    model = GPT(**ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=b.lr)
    opt.load_state_dict(ckpt["optimizer"])
    train(model, opt, b.lr_at, b.start_step, b.end_step, out, b.steps, [])
