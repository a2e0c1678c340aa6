"""riverbed.integrations.hf's decay-branch helpers: arguments from the branch file, and a scheduler
that switches from the fork's (main-branch) state to the decay on purpose but checks any other resume;
a real Trainer decay branch runs in tests/orchestration (test_command_branch, the README journey)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import torch  # noqa: E402

from riverbed.errors import ConfigError  # noqa: E402
from riverbed.integrations.hf import DecayBranchLR, decay_branch_args, decay_branch_optimizers  # noqa: E402
from riverbed.schedules.branch_file import BranchSchedule  # noqa: E402

BRANCH = BranchSchedule(2e-3, {"type": "decay-branch", "main": {"type": "warmup-stable", "warmup": 4}, "fork_step": 20,
                               "decay_steps": 10, "shape": "linear"}, 20, 30)


def test_args_come_from_the_branch_file(tmp_path):
    args = decay_branch_args(BRANCH, tmp_path, report_to=[], use_cpu=True)
    assert (args.max_steps, args.learning_rate, args.output_dir) == (30, 2e-3, str(tmp_path))
    with pytest.raises(ConfigError, match="max_steps comes from the branch schedule file"):
        decay_branch_args(BRANCH, tmp_path, max_steps=5)
    model = torch.nn.Linear(2, 2)
    wrong = decay_branch_args(BranchSchedule(1e-3, BRANCH.spec, 20, 30), tmp_path, report_to=[], use_cpu=True)
    with pytest.raises(ConfigError, match="the branch's peak LR is 0.002"):
        decay_branch_optimizers(model, wrong, BRANCH)


def test_the_fork_state_switches_to_the_decay_and_another_step_is_checked():
    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=2e-3)
    main = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    for _ in range(20):
        opt.step()
        main.step()
    sched = DecayBranchLR(opt, BRANCH)
    sched.load_state_dict(main.state_dict())  # at the fork (step 20): the LR drop is the branch, accepted
    assert sched.last_epoch == 20 and opt.param_groups[0]["lr"] == pytest.approx(2e-3 * BRANCH.schedule.multiplier(20))
    for _ in range(4):
        opt.step()
        main.step()
    with pytest.raises(ConfigError, match="LR at step 24 would jump"):
        DecayBranchLR(opt, BRANCH).load_state_dict(main.state_dict())  # not the fork: a schedule change
