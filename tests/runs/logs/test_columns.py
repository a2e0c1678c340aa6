"""The one column-mapping rule: names given, aliases, ambiguity, what is missing; shared by logs and scaling."""

from __future__ import annotations

import pytest

from riverbed.errors import LogError, ScalingError
from riverbed.runs.logs.columns import LOG_ALIASES, LOG_FLAGS, norm, resolve_columns
from riverbed.scaling.points import Columns, resolve_columns as scaling_columns


def test_norm_ignores_case_spaces_and_dashes():
    assert norm("  Train-Loss ") == "train_loss" and norm("Learning Rate") == "learning_rate"


def test_wandb_names_resolve_to_roles():
    header = ["_step", "train/loss", "trainer/learning_rate", "eval/loss", "train/num_input_tokens_seen"]
    got = resolve_columns(header, roles=LOG_ALIASES, given={}, flags=LOG_FLAGS, source="w.csv")
    assert got == {"step": 0, "lr": 2, "loss": 1, "eval_loss": 3, "tokens": 4}


def test_a_given_name_wins_and_an_absent_one_names_its_flag():
    header = ["step", "lr", "my_loss"]
    got = resolve_columns(header, roles=LOG_ALIASES, given={"loss": "MY_LOSS"}, flags=LOG_FLAGS, source="a.csv")
    assert got["loss"] == 2
    with pytest.raises(LogError, match=r"a.csv: --lr-col 'rate' is not a column"):
        resolve_columns(header, roles=LOG_ALIASES, given={"lr": "rate"}, flags=LOG_FLAGS, source="a.csv")


def test_two_candidates_for_one_role_ask_for_the_flag():
    with pytest.raises(LogError, match=r"'lr', 'learning_rate' could each be lr; choose one with --lr-col"):
        resolve_columns(["step", "lr", "learning_rate"], roles=LOG_ALIASES, given={}, flags=LOG_FLAGS, source="a.csv")


def test_scaling_csv_uses_the_same_rule_with_its_own_error():
    assert scaling_columns(["Params", "Tokens", "eval-loss"], Columns(), "s.csv") == {"n": 0, "d": 1, "loss": 2}
    with pytest.raises(ScalingError, match=r"s.csv: missing column\(s\) N; .*--n-col/--d-col/--c-col/--loss-col"):
        scaling_columns(["tokens", "loss"], Columns(), "s.csv")
