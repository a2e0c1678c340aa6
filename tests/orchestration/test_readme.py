"""The README's "Bring your own run" journey, executed as written: a real Trainer output_dir is
adopted, listed, branched by the README's own Trainer decay script (three HF Trainer runs),
fitted, predicted, checked, merged, scaled, reported -- and the Trainer output stays byte-identical."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from riverbed.cli.main import main
from riverbed.runs import Run
from tests.orchestration.conftest import TINY, tree_hash

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Bring your own run")
    return text[start:text.index("\n## ", start + 1)]


def test_the_readme_section_names_what_the_test_runs():
    sec = _section()
    bash = re.findall(r"```bash\n(.*?)```", sec, flags=re.S)
    py = re.findall(r"```python\n(.*?)```", sec, flags=re.S)
    assert len(bash) == 1 and len(py) == 1
    verbs = [shlex.split(line)[1] for line in bash[0].splitlines()]
    assert verbs == ["adopt", "ls", "branch", "predict", "predict", "predict", "merge", "scaling", "report"]
    assert "decay_branch_optimizers" in py[0] and "resume_from_checkpoint=fork" in py[0]


@pytest.mark.slow
def test_readme_journey_runs_as_written(hf_output, tmp_path, monkeypatch, capsys):
    sec = _section()
    bash = re.findall(r"```bash\n(.*?)```", sec, flags=re.S)[0]
    script = re.findall(r"```python\n(.*?)```", sec, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hf_out").symlink_to(hf_output)  # the README's name for the Trainer output_dir
    (tmp_path / "decay.py").write_text(script)
    (tmp_path / "my_data.py").write_text("from _tiny import Patterned\n\ntrain_set, eval_set = Patterned(), Patterned(64)\n")
    src = str(Path(__file__).parents[2] / "src")
    monkeypatch.setenv("PYTHONPATH", ":".join([str(tmp_path), str(TINY), src]))
    before = tree_hash(hf_output)
    for line in bash.splitlines():
        argv = [a if a != "python" else sys.executable for a in shlex.split(line)[1:]]
        if argv[0] == "branch":
            argv[argv.index("--command") + 1] = argv[argv.index("--command") + 1].replace("python", sys.executable, 1)
        rc = main(argv)
        cap = capsys.readouterr()
        if argv[0] == "predict" and rc == 2:  # the README says so: on this toy run a fit may be refused
            assert "is unreliable" in cap.err and "--force" in cap.err, f"{line}\n{cap.err}"
            continue
        assert rc == 0, f"{line}\n{cap.err}"
    run = Run.open(tmp_path / "runs" / "hf")
    decays = [b for b in run.branches if b.kind == "decay"]
    assert [(b.fork.step, b.final.step, b.status) for b in decays] == [(24, 32, "finished"), (32, 40, "finished"),
                                                                      (40, 48, "finished")]
    assert all(b.final.eval_loss < b.fork.eval_loss for b in decays)  # a decay lowers the held-out loss
    merged = json.loads((tmp_path / "merged" / "merge.json").read_text())
    assert merged["selection"]["stable_only"] is True and len(merged["inputs"]) == 3
    assert (tmp_path / "report.html").is_file()
    assert tree_hash(hf_output) == before
