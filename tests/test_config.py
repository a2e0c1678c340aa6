"""RunConfig: TOML sections, typed overrides, errors naming key and file, exact round trip."""

from __future__ import annotations

import tomllib

import pytest

from riverbed.config import (
    DEFAULT_SCHEDULE,
    OPTIONAL_SECTIONS,
    RunConfig,
    TrainConfig,
    config_from_dict,
    dumps_toml,
    load_config,
    load_config_text,
)
from riverbed.errors import ConfigError
from riverbed.merging.pma_snapshots import PMAConfig
from riverbed.config.forecast import ForecastConfig
from riverbed.config.guard import GuardConfig
from riverbed.config.init import InitConfig
from riverbed.schedules import WarmupStable, schedule_from_spec

TOML = """
[model]
preset = "tiny"
n_layers = 3

[optim]
lr = 0.002
betas = [0.9, 0.99]

[schedule]
type = "warmup-stable"
warmup = 5

[train]
batch_size = 8
seq_len = 32
max_steps = 100
"""


def _write(tmp_path, text=TOML):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_load_sections_and_defaults(tmp_path):
    cfg = load_config(_write(tmp_path))
    assert cfg.model.n_layers == 3 and cfg.model.d_model == 64  # preset + override
    assert cfg.optim.lr == 0.002 and cfg.optim.betas == (0.9, 0.99) and cfg.optim.weight_decay == 0.1
    assert cfg.train.batch_size == 8 and cfg.train.grad_accum == 1 and cfg.train.total_steps == 100
    assert cfg.schedule_object() == WarmupStable(warmup=5)
    assert cfg.data.source == "default"
    assert cfg.pma is None and cfg.guard is None


def test_defaults_when_empty():
    cfg = load_config_text("")
    assert cfg.schedule_object() == schedule_from_spec(DEFAULT_SCHEDULE)
    assert cfg.train.total_steps is None  # indefinite main branch
    assert cfg.train.tokens_per_step == 32 * 128


def test_overrides_are_typed(tmp_path):
    cfg = load_config(_write(tmp_path), ["train.batch_size=16", "optim.lr=1e-2", "train.dtype=bfloat16",
                                         "schedule.warmup=7", "optim.betas=[0.8, 0.9]", "train.max_steps=3"])
    assert cfg.train.batch_size == 16 and cfg.optim.lr == 0.01 and cfg.train.dtype == "bfloat16"
    assert cfg.schedule["warmup"] == 7 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.train.max_steps == 3
    assert load_config(_write(tmp_path), ["optim.lr=1"]).optim.lr == 1.0  # int widens to float


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.batch_size=eight", "train.batch_size='eight'"),
        ("train.batch_size=8.5", "train.batch_size=8.5"),
        ("train.dtype=float16", "train.dtype='float16'"),
        ("train.tensorboard=1", "train.tensorboard=1"),
        ("train.nope=1", "unknown key train.nope"),
        ("nope.x=1", r"unknown section \[nope\]"),
        ("train.batch_size", "expected section.key=value"),
        ("train.batch_size=0", "train.batch_size=0"),
        ("train.batch_size=6", "train.grad_accum"),
        ("train.seq_len=1000", "model.max_seq_len"),
        ("optim.lr=-1", "optim.lr=-1"),
        ("model.n_heads=3", "model.d_model=64 must be divisible by model.n_heads=3"),
        ("schedule.type=nonsense", r"\[schedule\]"),
    ],
)
def test_bad_values_name_key_and_the_set_value(tmp_path, override, match):
    extra = ["train.grad_accum=4"] if override == "train.batch_size=6" else []
    with pytest.raises(ConfigError, match=match) as info:
        load_config(_write(tmp_path), [override, *extra])
    if "=" in override:
        # the error is in the --set value, not in the (valid) file it was applied to
        assert str(info.value).startswith("--set '") and "run.toml" not in str(info.value)


def test_unknown_key_in_file(tmp_path):
    bad = TOML.replace("lr = 0.002", "learning_rate = 0.002")
    with pytest.raises(ConfigError, match=r"run.toml: unknown key optim.learning_rate"):
        load_config(_write(tmp_path, bad))


def test_missing_and_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[train\n"))


def test_exclusive_lengths():
    with pytest.raises(ConfigError, match="at most one"):
        TrainConfig(max_steps=10, max_tokens=100)
    assert TrainConfig(batch_size=2, seq_len=10, max_tokens=45).total_steps == 3  # rounded up


def test_round_trip_is_exact(tmp_path):
    cfg = load_config(_write(tmp_path), ["optim.lr=3.3e-4", "train.eval_batch_size=3"])
    text = cfg.to_toml()
    again = load_config_text(text)
    assert again == cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert tomllib.loads(text)["optim"]["lr"] == 3.3e-4


def test_nested_schedule_round_trip():
    spec = {"type": "decay-branch", "main": {"type": "warmup-stable", "warmup": 10}, "fork_step": 100,
            "decay_steps": 20, "shape": "1-sqrt"}
    cfg = config_from_dict({"schedule": spec})
    assert load_config_text(cfg.to_toml()) == cfg
    assert cfg.schedule_object().multiplier(50) == 1.0


def test_dumps_toml_escapes_and_lists():
    d = {"a": {"s": 'q"uote\\', "l": [1, 2.5, True], "t": {"x": 1}}, "b": {"inline": [{"k": "v"}]}}
    assert tomllib.loads(dumps_toml(d)) == d


def test_optional_sections_are_typed():
    assert OPTIONAL_SECTIONS == {"pma": PMAConfig, "guard": GuardConfig, "init": InitConfig, "forecast": ForecastConfig}
    cfg = load_config_text("[pma]\nevery = 10\n[guard]\n")
    assert cfg.pma.every == 10 and cfg.guard is not None and cfg.init is None
    assert load_config_text(cfg.to_toml()) == cfg
    with pytest.raises(ConfigError, match="unknown key pma.bogus"):
        load_config_text("[pma]\nevery = 10\nbogus = 1\n")


def test_enum_error_lists_allowed_values():
    # issue 9 item 11: a Literal field used to say "expected Literal" without the values.
    with pytest.raises(ConfigError, match=r"train\.device='gpu' is not allowed; allowed values: 'auto', 'cpu', 'cuda'"):
        load_config_text("[train]\ndevice = \"gpu\"\n", source="r.toml")
    with pytest.raises(ConfigError, match=r"train\.dtype='fp16'.*'float32', 'bfloat16'"):
        load_config_text("", ["train.dtype=fp16"], source="r.toml")


def test_optional_literal_type_name_lists_values():
    from typing import Literal

    from riverbed.config_types import coerce

    with pytest.raises(ConfigError, match=r"expected one of 'a', 'b' or NoneType"):
        coerce(3, Literal["a", "b"] | None, "x.k", "f.toml")
