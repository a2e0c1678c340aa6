"""`riverbed schedule plot|values|check` end to end, in process."""

from __future__ import annotations

import json

import pytest

from riverbed.cli.main import main

WSD_FLAGS = ["--type", "wsd", "--warmup", "10", "--stable", "70", "--decay-steps", "20", "--shape", "linear", "--min-ratio", "0.1"]


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_values_from_flags(capsys):
    assert main(["schedule", "values", *WSD_FLAGS, "--json"]) == 0
    out = _json(capsys)
    assert out["total_steps"] == 100 and len(out["multipliers"]) == 100
    assert out["multipliers"][0] == pytest.approx(0.1) and out["multipliers"][99] == pytest.approx(0.1)
    assert out["multipliers"][90] == pytest.approx(0.505)
    assert out["spec"]["type"] == "wsd"


def test_values_from_toml_file_and_steps_flag(tmp_path, capsys):
    spec = tmp_path / "lr.toml"
    spec.write_text('[schedule]\ntype = "wsd"\nwarmup = 10\nstable = 70\ndecay = 20\nshape = "linear"\nmin_ratio = 0.1\n')
    assert main(["schedule", "values", str(spec), "--json"]) == 0
    from_file = _json(capsys)["multipliers"]
    assert main(["schedule", "values", "--type", "wsd", "--warmup", "10", "--decay-steps", "20", "--steps", "100",
                 "--shape", "linear", "--min-ratio", "0.1", "--json"]) == 0
    assert _json(capsys)["multipliers"] == from_file
    top = tmp_path / "top.toml"
    top.write_text('type = "warmup-stable"\nwarmup = 4\n')
    assert main(["schedule", "values", str(top), "--until", "5", "--json"]) == 0
    assert _json(capsys)["multipliers"] == [0.25, 0.5, 0.75, 1.0, 1.0]


@pytest.mark.parametrize(
    ("flags", "first", "last"),
    [
        (["--preset", "hf", "--warmup", "10", "--decay-steps", "20", "--steps", "100", "--shape", "linear", "--min-ratio", "0.1"], 0.1, 0.145),
        (["--preset", "torchtitan", "--warmup", "10", "--decay-steps", "20", "--steps", "100", "--shape", "1-sqrt", "--min-ratio", "0.1"], 0.1, 0.122789),
        (["--preset", "olmo-core", "--warmup", "10", "--decay-steps", "20", "--steps", "100", "--min-ratio", "0.1"], 0.1, 0.1),
        (["--preset", "olmo-core", "--budgets", "1000,2000", "--warmup", "100", "--decay-steps", "200"], 0.01, 0.0),
    ],
)
def test_values_presets(capsys, flags, first, last):
    assert main(["schedule", "values", *flags, "--json"]) == 0
    m = _json(capsys)["multipliers"]
    assert m[0] == pytest.approx(first) and m[-1] == pytest.approx(last, abs=1e-6)


def test_plot_and_shapes(tmp_path, capsys):
    out = tmp_path / "lr.png"
    assert main(["schedule", "plot", *WSD_FLAGS, "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shapes = tmp_path / "shapes.png"
    assert main(["schedule", "plot", "--shapes", "--plot", str(shapes)]) == 0
    assert shapes.stat().st_size > 10_000
    assert main(["schedule", "plot", "--type", "warmup-stable", "--warmup", "5", "--plot", str(out)]) == 2
    assert "--until" in capsys.readouterr().err


def test_check(capsys):
    assert main(["schedule", "check", *WSD_FLAGS, "--checkpoints", "80,100", "--json"]) == 0
    r = _json(capsys)
    assert r["min_reached"] is True and r["decay_fraction"] == 0.2
    assert r["checkpoints"] == [[80, 1.0], [100, pytest.approx(0.1)]]
    assert main(["schedule", "check", "--preset", "hf", "--warmup", "10", "--decay-steps", "20", "--steps", "100",
                 "--min-ratio", "0.1"]) == 0
    assert "NO: the last step stops short" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--type", "wsd", "--warmup", "10", "--decay-steps", "20", "--steps", "100", "--shape", "zig"], "wsd.shape: unknown decay shape 'zig'"),
        (["--type", "wsd", "--warmup", "10", "--decay-steps", "200", "--steps", "100"], "longer than the schedule"),
        (["--type", "wsd", "--warmup", "10", "--stable", "5", "--decay-steps", "2", "--min-ratio", "1.5"], "wsd.min_ratio"),
        (["--type", "wsd", "--warmup", "-1", "--stable", "5", "--decay-steps", "2"], "argument --warmup: '-1': must be >= 0"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        ([], "give a SPEC file"),
    ],
)
def test_errors_exit_2_naming_the_field(capsys, argv, message):
    assert main(["schedule", "values", *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_spec_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[schedule]\ntype = "wsd"\nwarmup = 1\nstable = 2\ndecay = 3\ncolour = "red"\n')
    assert main(["schedule", "check", str(bad)]) == 2
    assert "unknown key 'colour'" in capsys.readouterr().err
    assert main(["schedule", "check", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
