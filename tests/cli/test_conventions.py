"""What holds for every verb: clean --help, one meaning per flag, one number parser,
deprecated spellings that still work, `python -m riverbed`, shell completion."""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from riverbed.cli.completion import bash_script
from riverbed.cli.main import VERBS, build_parser, main

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _all_parsers():
    def walk(p, path):
        yield path, p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield from walk(sub, f"{path} {name}")

    return list(walk(build_parser(), "riverbed"))


def test_every_verb_is_registered_and_help_is_plain_text():
    paths = [path for path, _ in _all_parsers()]
    assert {"riverbed eval", "riverbed rm", "riverbed completion", "riverbed schedule plot"} <= set(paths)
    for path, p in _all_parsers():
        text = p.format_help()
        assert "``" not in text and ":class:" not in text and ":func:" not in text, path
        assert "RESUMABLE" not in text, path


def test_train_help_names_every_resumable_key():
    from riverbed.runs.resume import RESUMABLE

    text = dict(_all_parsers())["riverbed train"].format_help()
    for key in RESUMABLE:
        assert key.split(".")[1] in text


def test_one_meaning_per_flag_name():
    # flag -> the set of metavar/type kinds it has across verbs; a renamed flag is hidden everywhere
    for path, p in _all_parsers():
        visible = {o for a in p._actions if a.help is not argparse.SUPPRESS for o in a.option_strings}
        assert "--decay" not in visible, path  # --shape / --decay-steps / --decay-fraction now
        if "--out" in visible:  # an output directory; for `report` the page it writes (report.html)
            assert path in ("riverbed demo", "riverbed report", "riverbed claims", "riverbed adopt") or path.startswith("riverbed experiment"), path
        if "-o" in visible:  # a JSON file written
            assert path in ("riverbed plan", "riverbed scaling fit") or path.startswith("riverbed predict"), path


def test_count_flags_use_the_one_number_parser():
    # a flag that counts steps, tokens, FLOPs or budgets never falls back to plain int()/float()
    counts = {"--steps", "--every", "--warmup", "--stable", "--until", "--budgets", "--flops", "--tokens-per-step",
              "--n-params", "--jump", "--blip-len", "--main-steps", "--decay-steps", "--fork-step", "--rewarmup",
              "--checkpoints", "--bootstrap", "--n", "--d", "--stages"}
    for path, p in _all_parsers():
        for a in p._actions:
            if counts & set(a.option_strings):
                assert a.type not in (int, float), f"{path} {a.option_strings}"


@pytest.mark.parametrize("argv, dest, value", [
    (["plan", "--budgets", "100", "--decay", "0.2"], "decay", 0.2),
    (["schedule", "values", "--type", "wsd", "--decay", "20"], "decay", 20),
    (["schedule", "plot", "-o", "x.png"], "plot", "x.png"),
    (["scaling", "fit", "a.csv", "--out", "fit.json"], "out", "fit.json"),
    (["branch", "run", "--decay", "linear"], "shape", "linear"),
])
def test_deprecated_spellings_still_work_with_a_message(capsys, argv, dest, value):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert "is deprecated, use" in err and "next release" in err


def test_deprecated_alias_end_to_end(capsys):
    assert main(["plan", "--budgets", "100,200", "--decay", "0.2", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["inputs"]["decay"] == 0.2
    assert "`riverbed plan --decay` is deprecated, use --decay-fraction" in captured.err


def test_count_flags_take_suffixes_and_scientific_notation(capsys):
    assert main(["schedule", "values", "--type", "wsd", "--warmup", "1e1", "--stable", "0.07K", "--decay-steps", "20",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_steps"] == 100
    assert main(["schedule", "check", "--type", "wsds", "--budgets", "1K,2e3", "--decay-steps", "200", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_steps"] == 2000
    assert main(["plan", "--budgets", "100M,200M", "--unit", "tokens", "--tokens-per-step", "64K", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inputs"]["tokens_per_step"] == 64000
    args = build_parser().parse_args(["merge", "out", "--run", "r", "--last", "2", "--every", "100K"])
    assert args.every == 100_000
    args = build_parser().parse_args(["merge", "out", "--run", "r", "--last", "2", "--every", "1e5"])
    assert args.every == 100_000


@pytest.mark.parametrize("argv, message", [
    (["merge", "out", "--run", "r", "--last", "2", "--every", "1e400"], "argument --every: '1e400': 1e400 is too large"),
    (["merge", "out", "--run", "r", "--last", "2", "--every", "1.5"], "whole number"),
    (["schedule", "values", "--type", "wsd", "--warmup", "ten"], "argument --warmup: 'ten': expected a number"),
    (["plan", "--budgets", "1e8,,2e8"], "comma-separated"),
    (["train", "--run", "x", "--steps", "2.5K5"], "argument --steps"),
])
def test_bad_numbers_exit_2_naming_the_flag(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_frontier_flops_comma_separated(tmp_path, capsys):
    from riverbed.scaling import fit_law, load_points, save_fit

    # a small synthetic Chinchilla grid: L = 1.7 + 400/N^0.34 + 410/D^0.28
    rows = ["N,D,loss"] + [f"{n:g},{d:g},{1.7 + 400 / n**0.34 + 410 / d**0.28:.6f}"
                           for n in (1e7, 3e7, 1e8, 3e8) for d in (1e9, 3e9, 1e10)]
    pts = tmp_path / "grid.csv"
    pts.write_text("\n".join(rows) + "\n")
    fit = tmp_path / "fit.json"
    save_fit(fit_law(load_points([str(pts)]), "chinchilla", bootstrap=0), str(fit))
    assert main(["scaling", "frontier", str(fit), "--flops", "1e21,5e23", "--json"]) == 0
    comma = json.loads(capsys.readouterr().out)["frontier"]
    assert main(["scaling", "frontier", str(fit), "--flops", "1e21", "5e23", "--json"]) == 0
    spaced = json.loads(capsys.readouterr().out)["frontier"]
    assert len(comma) == 2 and comma == spaced


def test_set_value_errors_name_the_set_value_not_the_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nbatch_size = 8\n")
    assert main(["train", str(cfg), "--run", str(tmp_path / "r"), "--set", "train.batch_size=abc"]) == 2
    err = capsys.readouterr().err
    assert "--set 'train.batch_size=abc'" in err and str(cfg) not in err
    # an error in the file itself still names the file
    cfg.write_text("[train]\nbatch_size = 'x'\n")
    assert main(["train", str(cfg), "--run", str(tmp_path / "r"), "--set", "train.seed=1"]) == 2
    assert str(cfg) in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_demo_help_counts_match_the_demo():
    from riverbed.experiments.demo import FULL, QUICK

    text = dict(_all_parsers())["riverbed demo"].format_help()
    assert f"{len(QUICK.budgets)} budgets" in text and len(FULL.budgets) == 4
    assert "4 decay branches" not in text


def test_python_dash_m_riverbed():
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run([sys.executable, "-m", "riverbed", "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("riverbed ")
    r = subprocess.run([sys.executable, "-m", "riverbed", "rm"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "usage: riverbed rm" in r.stderr


def _complete(script_path, words):
    # called as bash calls it: COMP_WORDS/COMP_CWORD set, then (command, current word, previous word)
    cur, prev = words[-1], words[-2]
    cmd = (f"source {script_path}; COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; "
           f"_riverbed_complete riverbed {cur} {prev}; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_from_the_parser_tree(tmp_path, capsys):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "riverbed.bash"
    script.write_text(capsys.readouterr().out)
    assert set(VERBS) <= set(_complete(script, ["riverbed", "''"]))
    assert _complete(script, ["riverbed", "sch"]) == ["schedule"]
    assert set(_complete(script, ["riverbed", "schedule", "''"])) == {"plot", "values", "check"}
    opts = _complete(script, ["riverbed", "schedule", "plot", "--"])
    assert "--decay-steps" in opts and "--plot" in opts and "--decay" not in opts  # deprecated: hidden
    assert _complete(script, ["riverbed", "merge", "--method", "''"]) == ["sma", "ema", "wma", "weights"]
    assert "--recursive" in _complete(script, ["riverbed", "rm", "--"])
    assert main(["completion", "zsh"]) == 0
    assert "bashcompinit" in capsys.readouterr().out
    assert bash_script(build_parser()).count("complete -o default") == 1
