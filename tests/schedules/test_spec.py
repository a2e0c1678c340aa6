"""Spec dicts: exact round trips through JSON and TOML, clear errors."""

from __future__ import annotations

import json
import tomllib

import pytest

from riverbed.errors import ConfigError
from riverbed.schedules import (
    Tabulated,
    TYPES,
    WSD,
    WSDS,
    Constant,
    Cosine,
    CyclicCosine,
    DecayBranch,
    Piecewise,
    Warmup,
    WarmupStable,
    hf_wsd,
    schedule_fingerprint,
    schedule_from_spec,
    schedule_to_spec,
)

EXAMPLES = [
    Tabulated((0.5, 1.0, 0.75, 0.1), warmup=2),
    Constant(0.5, steps=10),
    Warmup(steps=5, start=0.1, shape="cosine"),
    WarmupStable(warmup=100),
    WSD(10, 70, 20, shape="1-sqrt", min_ratio=0.1),
    WSD(10, 70, 20, shape="exp-minicpm", half_life=5.5),
    WSD(0, 80, 20, shape="step", min_ratio=0.1, stages=3),
    Cosine(steps=100, warmup=5, min_ratio=0.1),
    DecayBranch(WarmupStable(warmup=10), fork_step=500, decay_steps=50, shape="cosine", min_ratio=0.05),
    WSDS(budgets=(1000, 2000), warmup=100, decays=(200, 200), min_ratio=0.1),
    CyclicCosine(budgets=(100, 300), warmup=10, rewarmup=20, min_ratio=0.1),
    hf_wsd(10, 20, 100, decay_type="linear", min_lr_ratio=0.1),
]


def _toml(spec: dict) -> str:
    # Minimal writer for these specs: scalars, lists of ints, nested tables as inline tables.
    def val(v):
        if isinstance(v, dict):
            return "{" + ", ".join(f'"{k}" = {val(x)}' for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return json.dumps(v)

    return "[schedule]\n" + "".join(f"{k} = {val(v)}\n" for k, v in spec.items())


def test_examples_cover_every_type():
    assert {type(s) for s in EXAMPLES} == set(TYPES.values())


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip_json_and_toml(schedule):
    spec = schedule_to_spec(schedule)
    assert schedule_from_spec(json.loads(json.dumps(spec))) == schedule
    assert schedule_from_spec(tomllib.loads(_toml(spec))["schedule"]) == schedule
    assert schedule_to_spec(schedule_from_spec(spec)) == spec
    assert "null" not in json.dumps(spec)  # TOML has no null


def test_spec_format_example():
    spec = schedule_to_spec(DecayBranch(WarmupStable(warmup=10), fork_step=80, decay_steps=20, min_ratio=0.1))
    assert spec == {
        "type": "decay-branch",
        "main": {"type": "warmup-stable", "warmup": 10, "warmup_start": 0.0, "warmup_shape": "linear"},
        "fork_step": 80,
        "decay_steps": 20,
        "shape": "1-sqrt",
        "min_ratio": 0.1,
    }


def test_integral_floats_and_defaults_accepted():
    s = schedule_from_spec({"type": "wsd", "warmup": 1e1, "stable": 70, "decay": 20, "min_ratio": 0})
    assert s == WSD(10, 70, 20, min_ratio=0.0)


def test_preset_spec_builds_the_mapped_schedule():
    s = schedule_from_spec({"preset": "torchtitan", "steps": 10, "warmup_steps": 2})
    assert isinstance(s, Piecewise) and s.values()[0] == 0.5
    assert schedule_from_spec(schedule_to_spec(s)) == s


def test_fingerprint_is_stable_and_key_order_free():
    a = WSD(10, 70, 20)
    spec = schedule_to_spec(a)
    assert schedule_fingerprint(a) == schedule_fingerprint(dict(reversed(list(spec.items()))))
    assert schedule_fingerprint(a) != schedule_fingerprint(WSD(10, 71, 20))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "wsd", "warmup": 1, "stable": 2, "decay": 3, "colour": "red"}, "unknown key 'colour'"),
        ({"type": "wsd", "warmup": 1, "stable": 2}, "missing key 'decay'"),
        ({"type": "wsdx"}, "schedule.type: unknown schedule type 'wsdx'"),
        ({"type": "wsd", "warmup": "ten", "stable": 2, "decay": 3}, "schedule.warmup: must be an integer"),
        ({"type": "wsd", "warmup": 1.5, "stable": 2, "decay": 3}, "schedule.warmup: must be an integer"),
        ({"type": "wsd", "warmup": 1, "stable": 2, "decay": 3, "shape": "zig"}, "wsd.shape: unknown decay shape 'zig'"),
        ({"type": "decay-branch", "main": {"type": "warmup-stable", "x": 1}, "fork_step": 1, "decay_steps": 1}, "schedule.main: unknown key 'x'"),
        ({"type": "piecewise", "segments": [{"schedule": {"type": "constant"}, "len": 3}]}, r"segments\[0\]: unknown key 'len'"),
        ({"type": "wsd", "preset": "hf"}, "either 'type' or 'preset'"),
        ("wsd", "must be a table"),
    ],
)
def test_bad_specs_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        schedule_from_spec(spec)


def test_wsd_spec_takes_total_steps_like_the_cli():
    by_steps = schedule_from_spec({"type": "wsd", "warmup": 10, "steps": 100, "decay": 20, "min_ratio": 0.1})
    by_stable = schedule_from_spec({"type": "wsd", "warmup": 10, "stable": 70, "decay": 20, "min_ratio": 0.1})
    assert by_steps == by_stable == WSD.from_total(100, 10, 20, min_ratio=0.1)
    # one canonical written form: the round trip is exact and the fingerprint ignores the spelling
    assert schedule_to_spec(by_steps)["stable"] == 70 and "steps" not in schedule_to_spec(by_steps)
    assert schedule_from_spec(schedule_to_spec(by_steps)) == by_steps
    assert schedule_fingerprint({"type": "wsd", "warmup": 10, "steps": 100, "decay": 20, "min_ratio": 0.1}) == \
        schedule_fingerprint(by_stable)
    assert schedule_from_spec({"type": "wsd", "warmup": 0, "steps": 100, "stable": 80, "decay": 20}) == WSD(0, 80, 20)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "wsd", "warmup": 0, "steps": 100, "stable": 70, "decay": 20}, r"schedule\.steps: steps=100 disagrees"),
        ({"type": "wsd", "warmup": 50, "steps": 60, "decay": 20}, r"schedule\.decay: warmup \(50\) \+ decay \(20\) is longer"),
        ({"type": "wsd", "warmup": 0, "steps": 100}, r"missing key 'decay'"),
        ({"type": "wsd", "steps": 100, "decay": 20}, r"missing key 'warmup'"),
        ({"type": "wsd", "warmup": 0, "steps": "100", "decay": 20}, r"schedule\.steps: must be an integer"),
    ],
)
def test_wsd_steps_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        schedule_from_spec(spec)


def test_cli_reads_a_wsd_spec_file_with_steps(tmp_path, capsys):
    from riverbed.cli.main import main

    spec = tmp_path / "lr.toml"
    spec.write_text('[schedule]\ntype = "wsd"\nwarmup = 10\nsteps = 100\ndecay = 20\nshape = "linear"\nmin_ratio = 0.1\n')
    assert main(["schedule", "values", str(spec), "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    assert from_file["spec"]["stable"] == 70 and from_file["total_steps"] == 100
    assert main(["schedule", "values", "--type", "wsd", "--warmup", "10", "--decay-steps", "20", "--steps", "100",
                 "--shape", "linear", "--min-ratio", "0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["multipliers"] == from_file["multipliers"]
    bad = tmp_path / "bad.toml"
    bad.write_text('type = "wsd"\nwarmup = 0\nsteps = 100\nstable = 50\ndecay = 20\n')
    assert main(["schedule", "values", str(bad)]) == 2
    assert "steps=100 disagrees" in capsys.readouterr().err


def test_cli_values_are_bounded_and_thinned_by_every(capsys):
    """A billion-step schedule is refused with the --every that fits (it once held every value in memory);
    --every K lists every K-th step and the last."""
    from riverbed.cli.main import main

    assert main(["schedule", "values", "--type", "wsd", "--steps", "1G", "--decay-steps", "10"]) == 2
    err = capsys.readouterr().err
    assert "give --every 1,001 or more" in err
    assert main(["schedule", "values", "--type", "wsd", "--steps", "1G", "--decay-steps", "10", "--every", "1000"]) == 2
    assert main(["schedule", "values", "--type", "wsd", "--steps", "1G", "--decay-steps", "10", "--every", "1001"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) <= 1_000_000 and out[0].startswith("0\t") and out[-1].startswith("999999999\t")
    assert main(["schedule", "values", "--type", "wsd", "--steps", "10", "--decay-steps", "4", "--shape", "linear",
                 "--every", "4", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["steps"] == [0, 4, 8, 9] and doc["multipliers"] == [1.0, 1.0, 0.25, 0.0]


def test_tabulated_spec_round_trips_through_json_and_toml_and_names_bad_values():
    import re
    from riverbed.toml_writer import dumps_toml as toml_dumps

    s = Tabulated((0.25, 0.5, 1.0, 1.0, 0.6, 0.1), warmup=3)
    spec = schedule_to_spec(s)
    assert spec == {"type": "tabulated", "table": [0.25, 0.5, 1.0, 1.0, 0.6, 0.1], "warmup": 3}
    assert schedule_from_spec(json.loads(json.dumps(spec))) == s
    assert schedule_from_spec(tomllib.loads(toml_dumps({"schedule": spec}))["schedule"]) == s
    assert s.values(8)[-3:] == [0.1, 0.1, 0.1] and s.total_steps == 6
    assert [p.name for p in s.phases()] == ["warmup", "decay"]
    for bad, key in (({"table": []}, "tabulated.table"), ({"table": [1.0, -0.1]}, "table[1]"),
                     ({"table": [1.0, "x"]}, "table[1]"), ({"table": [1.0], "warmup": 2}, "tabulated.warmup")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            schedule_from_spec({"type": "tabulated", **bad})
