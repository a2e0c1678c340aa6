"""The command line's start: `riverbed --help` lists every verb without importing any verb
module, a verb imports only its own module, and neither pulls in the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

from riverbed.cli.main import VERBS, build_parser

PROBE = ("import sys, json\nfrom riverbed.cli.main import main\nrc = main(sys.argv[1:])\n"
         "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
         "('torch', 'scipy', 'matplotlib', 'numpy') or m.startswith('riverbed.cli.') or m.startswith('riverbed.reports'))))")


def _imported(*argv: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_lazy_help_is_the_full_help():
    assert build_parser(lazy=True).format_help() == build_parser().format_help()


def test_one_verb_parses_as_with_every_verb(tmp_path):
    argv = ["ls", str(tmp_path), "--json"]
    assert vars(build_parser("ls").parse_args(argv)) == vars(build_parser().parse_args(argv))


def test_help_and_ls_start_without_verb_modules_or_heavy_libraries(tmp_path):
    mods = _imported("--help")
    assert [m for m in mods if m.startswith("riverbed.cli.") and m != "riverbed.cli.main"] == []
    assert not any(m.split(".")[0] in ("torch", "scipy", "matplotlib", "numpy") for m in mods)
    mods = _imported("ls", str(tmp_path / "missing"))
    assert {m for m in mods if m.startswith("riverbed.cli.")} <= {"riverbed.cli.main", "riverbed.cli.ls"}
    assert not any(m.split(".")[0] in ("torch", "scipy", "matplotlib") or m.startswith("riverbed.reports") for m in mods)
    assert set(VERBS) >= {"ls", "merge", "train"}
