"""A decay branch trained by Hugging Face Trainer: python hf_decay.py FORK SCHEDULE OUT.

Trainer resumes the fork (weights, optimizer moments, step, RNG) and follows the branch's
schedule through riverbed.integrations.hf.decay_branch_optimizers; its checkpoints and
trainer_state.json land in OUT.
"""

import sys

import torch
import transformers
from _tiny import Patterned

from riverbed.integrations.hf import decay_branch_args, decay_branch_optimizers

fork, schedule, out = sys.argv[1:4]
torch.set_num_threads(1)
args = decay_branch_args(schedule, out, per_device_train_batch_size=8, save_steps=8, eval_strategy="steps", eval_steps=4,
                         logging_steps=4, report_to=[], use_cpu=True, seed=0, disable_tqdm=True)
model = transformers.AutoModelForCausalLM.from_pretrained(fork)
trainer = transformers.Trainer(model=model, args=args, train_dataset=Patterned(), eval_dataset=Patterned(64),
                               optimizers=decay_branch_optimizers(model, args, schedule))
trainer.train(resume_from_checkpoint=fork)
