"""The core install runs merge, scaling, schedule and plan without torch (issue 10, packaging).

A fresh interpreter gets a meta-path finder that makes ``import torch`` fail as it does where
torch is not installed, then runs the torch-free verbs in process. This catches an eager torch
import creeping into their import graph without building a second venv (.ci/torch_free.sh does
that in CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

SRC = Path(__file__).resolve().parents[1] / "src"

SCRIPT = r'''
import json, sys

class NoTorch:
    """Behave as if torch were not installed."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
from riverbed.cli.main import main

results = []
for argv in json.loads(sys.argv[1]):
    rc = main(argv)
    results.append({"argv": argv, "rc": rc, "torch": any(m.split(".")[0] == "torch" for m in sys.modules)})
sys.stdout.flush()
print("RESULTS " + json.dumps(results))
'''


def test_torch_free_verbs_and_train_names_the_extra(tmp_path):
    for i, v in enumerate((1.0, 3.0)):
        save_file({"w": np.full((2, 3), v, np.float32)}, str(tmp_path / f"ck{i}.safetensors"))
    d = [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9, 6.4e9]
    (tmp_path / "l.csv").write_text("params,tokens,eval/loss\n" + "".join(f"1e8,{x:g},{1.9 + 3000 / x**0.4:.6f}\n" for x in d))
    (tmp_path / "c.toml").write_text('[model]\npreset = "tiny"\n[train]\nmax_steps = 2\n')
    _dcp_folders(tmp_path)
    t = str(tmp_path)
    argvs = [
        ["merge", f"{t}/merged", f"{t}/ck0.safetensors", f"{t}/ck1.safetensors", "--no-progress"],
        ["merge", f"{t}/merged_dcp", f"{t}/dcp0", f"{t}/dcp1", "--no-progress"],  # torch DCP folders: read without torch
        ["scaling", "fit", f"{t}/l.csv", "--law", "data", "--bootstrap", "0", "-o", f"{t}/fit.json", "--plot", f"{t}/fit.png"],
        ["scaling", "predict", f"{t}/fit.json", "--d", "1e10"],
        ["schedule", "values", "--type", "wsd", "--warmup", "2", "--stable", "5", "--decay-steps", "3"],
        ["schedule", "plot", "--type", "wsd", "--warmup", "2", "--stable", "5", "--decay-steps", "3", "--plot", f"{t}/s.png"],
        ["plan", "--budgets", "1000,2000,4000", "--json"],
        ["ls", t],
        ["train", f"{t}/c.toml", "--run", f"{t}/run"],
    ]
    env = {**os.environ, "PYTHONPATH": str(SRC), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(argvs)], capture_output=True, text=True, env=env, cwd=t, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.split("RESULTS ", 1)[1])
    rcs = {r["argv"][0] + (" " + r["argv"][1] if r["argv"][0] in ("scaling", "schedule") else ""): r["rc"] for r in results}
    assert rcs == {"merge": 0, "scaling fit": 0, "scaling predict": 0, "schedule values": 0, "schedule plot": 0, "plan": 0, "ls": 2, "train": 2}, proc.stderr
    assert not any(r["torch"] for r in results)
    assert "riverbed train needs torch, which is not installed: pip install 'riverbed[train]'" in proc.stderr
    assert "is not a riverbed run" in proc.stderr  # ls on a plain folder: its own error, not torch's
    assert not (tmp_path / "run").exists()  # nothing created before the missing extra was found
    assert (tmp_path / "fit.png").stat().st_size > 0 and (tmp_path / "s.png").stat().st_size > 0
    merged = list((tmp_path / "merged").glob("*.safetensors"))
    from safetensors.numpy import load_file

    assert np.array_equal(load_file(str(merged[0]))["w"], np.full((2, 3), 2.0, np.float32))
    assert np.array_equal(load_file(str(tmp_path / "merged_dcp" / "model.safetensors"))["w"], np.full((2, 3), 2.0, np.float32))


def _dcp_folders(tmp_path: Path) -> None:
    """Two torch DCP checkpoints (written here, with torch; merged above by a process without it)."""
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    for i, v in enumerate((1.0, 3.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
            dcp.save({"w": torch.full((2, 3), v)}, checkpoint_id=str(tmp_path / f"dcp{i}"))


def test_missing_extra_error_from_the_python_api(tmp_path):
    # riverbed.train_branch (a lazy export) without torch names the extra instead of a bare
    # "No module named 'torch'".
    code = SCRIPT.split("from riverbed.cli.main")[0] + (
        "import riverbed\n"
        "try:\n    riverbed.train_branch\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60).stdout
    assert out.strip() == "MissingExtraError riverbed.train_branch needs torch, which is not installed: pip install 'riverbed[train]'"
