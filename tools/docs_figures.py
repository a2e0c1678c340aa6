"""Regenerate (or check) the README tables that come from commands: `make docs-figures`.

Each generated block in README.md sits between ``<!-- docs-figures:NAME -->`` and
``<!-- /docs-figures:NAME -->``; this script writes it from the command's own output, so the README
never carries a number no command in the repository prints.

    python tools/docs_figures.py run demo            # riverbed demo, then rewrite the block (~3 min, 2 cores)
    python tools/docs_figures.py run predict-check   # train docs/configs/predict-check.toml + 4 branches, check (~4 min)
    python tools/docs_figures.py update demo DIR     # rewrite the block from an existing demo run DIR
    python tools/docs_figures.py check demo DIR      # exit 1 and print a diff if README's block differs (CI)

Sections: ``demo`` (the demo table: `riverbed demo`'s own rows, from DIR/demo.json) and
``predict-check`` (the literal output of `riverbed predict check` on the run of
docs/configs/predict-check.toml; its seconds columns are machine-dependent, so the block says the
machine's load when it was measured).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Every document whose generated blocks `run` / `update` rewrite (a block may appear in several).
DOCS = (README, ROOT / "BENCHMARKS.md")
CLI = [sys.executable, "-m", "riverbed"]
PREDICT_CHECK_BRANCHES = (("150", "1-sqrt", "50"), ("300", "1-sqrt", "100"), ("400", "linear", "150"), ("450", "1-sqrt", "150"))


def human(n: float) -> str:
    from riverbed.runs.view import human as h

    return h(n)


def demo_block(run_dir: Path) -> str:
    """The README's demo table: the rows `riverbed demo` printed (DIR/demo.json), in markdown."""
    doc = json.loads((run_dir / "demo.json").read_text())
    lines = ["| budget | tokens | main @ fork | main @ budget (no decay) | decay branch | drop |", "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        at, fork = r["main_loss_at_budget"], r["main_loss_at_fork"]
        drop = "-" if at is None else f"{at - r['branch_loss']:+.4f}"
        lines.append(f"| {r['budget_steps']} steps | {human(r['tokens'])} | {'-' if fork is None else f'{fork:.4f}'} | "
                     f"{'-' if at is None else f'{at:.4f}'} | {r['branch_loss']:.4f} | {drop} |")
    lines += ["", f"The tree spent {human(doc['tree_tokens'])} tokens; the same {len(doc['rows'])} budgets as separate runs "
              f"would spend {human(doc['scratch_tokens'])}."]
    return "\n".join(lines)


def _load() -> str:
    try:
        return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "load unknown"


def predict_check_block(run_dir: Path) -> str:
    env = {**os.environ, "COLUMNS": "150"}
    out = subprocess.run([*CLI, "predict", "check", str(run_dir), "--no-progress"], check=True, capture_output=True, text=True,
                         env=env).stdout
    out = out.replace(str(run_dir), "run")
    return (f"```\n{out.rstrip()}\n```\n\n(seconds columns measured on {os.cpu_count()} CPU cores at {_load()} when the "
            "table was generated; they vary with the machine and its load)")


def _block_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- docs-figures:{re.escape(name)} -->\n)(.*?)(\n<!-- /docs-figures:{re.escape(name)} -->)", re.S)


def current(name: str, readme: Path = README) -> str:
    m = _block_re(name).search(readme.read_text())
    if m is None:
        raise SystemExit(f"{readme}: no block <!-- docs-figures:{name} --> ... <!-- /docs-figures:{name} -->")
    return m.group(2)


def update(name: str, text: str, readme: Path = README) -> None:
    current(name, readme)
    src = readme.read_text()
    readme.write_text(_block_re(name).sub(lambda m: m.group(1) + text + m.group(3), src))
    print(f"updated {readme} block {name}")


def update_all(name: str, text: str) -> None:
    for doc in DOCS:
        if f"<!-- docs-figures:{name} -->" in doc.read_text():
            update(name, text, doc)


def check(name: str, text: str, readme: Path = README) -> int:
    have = current(name, readme)
    if have == text:
        print(f"{readme} block {name}: matches")
        return 0
    sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), (text + "\n").splitlines(True), "README.md", "generated"))
    print(f"\n{readme} block {name} differs from the command's output (regenerate: make docs-figures)")
    return 1


def render(name: str, run_dir: Path) -> str:
    return {"demo": demo_block, "predict-check": predict_check_block}[name](run_dir)


def run_section(name: str, work: Path) -> Path:
    """Run the section's commands under ``work``; returns the run directory."""
    run_dir = work / name
    if name == "demo":
        subprocess.run([*CLI, "demo", "--out", str(run_dir), "--no-progress"], check=True)
        return run_dir
    subprocess.run([*CLI, "train", str(ROOT / "docs/configs/predict-check.toml"), "--run", str(run_dir), "--no-progress"], check=True)
    for fork, shape, length in PREDICT_CHECK_BRANCHES:
        subprocess.run([*CLI, "branch", str(run_dir), "--from", fork, "--shape", shape, "--length", length, "--no-progress"], check=True)
    return run_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("run", "update", "check", "render"))
    p.add_argument("section", choices=("demo", "predict-check"))
    p.add_argument("run_dir", nargs="?", type=Path, help="an existing run of the section (update/check/render)")
    p.add_argument("--readme", type=Path, default=README)
    p.add_argument("--work", type=Path, default=None, help="run: where to train (default: a temporary directory)")
    a = p.parse_args(argv)
    if a.action == "run":
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = run_section(a.section, a.work or Path(tmp))
            update_all(a.section, render(a.section, run_dir))
        return 0
    if a.run_dir is None:
        p.error(f"{a.action} needs the run directory")
    text = render(a.section, a.run_dir)
    if a.action == "render":
        print(text)
        return 0
    if a.action == "check":
        return check(a.section, text, a.readme)
    update_all(a.section, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
