"""A decay branch trained by a plain torch loop: python plain_decay.py FORK SCHEDULE OUT.

Loads the fork's weights, follows the branch's LR (read_branch_schedule(...).lr_at(step)),
evaluates every 4 steps, and writes step_<N>/ (save_pretrained) and log.csv (step, lr, loss,
eval_loss) under OUT, steps counted from the start of the run.
"""

import csv
import sys

import torch
import transformers
from _tiny import Patterned

from riverbed.schedules.branch_file import read_branch_schedule

fork, schedule, out = sys.argv[1:4]
b = read_branch_schedule(schedule)
torch.manual_seed(0)
torch.set_num_threads(1)
model = transformers.AutoModelForCausalLM.from_pretrained(fork)
opt = torch.optim.AdamW(model.parameters(), lr=b.lr)
train, held_out = Patterned(512).x, Patterned(64).x
rows = []
for step in range(b.start_step, b.end_step):
    for group in opt.param_groups:
        group["lr"] = b.lr_at(step)
    batch = train[(step * 8) % 512:(step * 8) % 512 + 8]
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    done = step + 1
    row = {"step": done, "lr": b.lr_at(step), "loss": float(loss), "eval_loss": ""}
    if done % 4 == 0 or done == b.end_step:
        with torch.no_grad():
            row["eval_loss"] = float(model(input_ids=held_out, labels=held_out).loss)
    rows.append(row)
model.save_pretrained(f"{out}/step_{b.end_step}")
with open(f"{out}/log.csv", "w", newline="") as f:
    w = csv.DictWriter(f, ["step", "lr", "loss", "eval_loss"])
    w.writeheader()
    w.writerows(rows)
