"""`riverbed probe` end to end on a tiny bigram run, and the Python API on the same checkpoints."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from riverbed.errors import CheckpointError
from riverbed.landscape import open_checkpoints
from riverbed.training import read_metrics


def _json(capsys, argv):
    rc = main(["probe", *argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def _tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_eval_rows_split_the_loss_by_bucket(bigram_run):
    run, _, _ = bigram_run
    rows = [r for r in read_metrics(layout.metrics_path(run, "main")) if r.get("kind") == "eval"]
    assert rows and all(set(r["eval_loss_by_bucket"]) <= {"deterministic", "low", "mid", "high"} for r in rows)
    assert all(r["eval_loss"] > r["eval_optimal_loss"] > 0 for r in rows)
    # Buckets are a partition of the positions: their count-weighted mean is the eval loss.
    setup, _ = open_checkpoints([layout.list_checkpoints(run, "main")[-1].path])
    x = torch.cat([b[0].flatten() for b in setup.batches])
    counts = torch.bincount(torch.as_tensor(setup.data.buckets.of_token)[x], minlength=4)
    last = rows[-1]["eval_loss_by_bucket"]
    mean = sum(counts[i].item() * last[n] for i, n in enumerate(setup.data.buckets.names) if n in last) / x.numel()
    assert mean == pytest.approx(rows[-1]["eval_loss"], rel=1e-5)


def test_probe_loss_is_the_logged_eval_loss(bigram_run):
    run, _, ckpts = bigram_run
    setup, params = open_checkpoints(ckpts)
    logged = {r["step"]: r["eval_loss"] for r in read_metrics(layout.metrics_path(run, "main")) if r.get("kind") == "eval"}
    for ref, p in zip(layout.list_checkpoints(run, "main"), params):
        assert setup.objective.loss(p) == pytest.approx(logged[ref.step], abs=1e-6)


def test_model_hvp_matches_a_finite_difference_of_gradients(bigram_run):
    _, _, ckpts = bigram_run
    setup, (p,) = open_checkpoints(ckpts[-1:])
    obj = setup.objective
    g = torch.Generator().manual_seed(0)
    v = {n: torch.randn(t.shape, generator=g) for n, t in p.items()}
    hv = obj.hvp(p, v)
    eps = 1e-3
    plus = obj.grad({n: p[n] + eps * v[n] for n in p})
    minus = obj.grad({n: p[n] - eps * v[n] for n in p})
    fd = torch.cat([((plus[n] - minus[n]) / (2 * eps)).flatten() for n in p])
    exact = torch.cat([hv[n].flatten() for n in p])
    assert torch.linalg.norm(fd - exact) <= 2e-2 * torch.linalg.norm(exact)


def test_interpolate_json_plot_and_flat_between_identical(bigram_run, capsys, tmp_path):
    _, _, ckpts = bigram_run
    png = tmp_path / "line.png"
    rc, out = _json(capsys, ["interpolate", str(ckpts[0]), str(ckpts[-1]), "--points", "5", "--extrapolate", "0.25",
                             "--plot", str(png)])
    assert rc == 0 and out["alphas"] == [-0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25] and png.stat().st_size > 1000
    setup, (a, b) = open_checkpoints([ckpts[0], ckpts[-1]])
    assert out["losses"][1] == pytest.approx(setup.objective.loss(a)) and out["losses"][5] == pytest.approx(setup.objective.loss(b))
    rc, same = _json(capsys, ["interpolate", str(ckpts[1]), str(ckpts[1]), "--points", "3", "--extrapolate", "0.5"])
    assert rc == 0 and len(set(same["losses"])) == 1  # float32 weights: 1.5 p - 0.5 p rounds back to p
    assert main(["probe", "interpolate", str(ckpts[0]), str(ckpts[1]), "--points", "3", "--no-progress"]) == 0
    assert "alpha" in capsys.readouterr().out


def test_sharpness_cli_and_non_convergence(bigram_run, capsys):
    _, _, ckpts = bigram_run
    rc, out = _json(capsys, ["sharpness", str(ckpts[-1]), "--top", "2", "--max-hvps", "80", "--tol", "1e-3"])
    assert rc == 0 and out["converged"] and out["eigenvalues"][0] >= out["eigenvalues"][1] > 0
    assert all(r <= 0.05 * out["eigenvalues"][0] for r in out["residuals"])
    rc = main(["probe", "sharpness", str(ckpts[-1]), "--top", "3", "--max-hvps", "5", "--tol", "1e-9"])
    assert rc == 1 and "DID NOT CONVERGE" in capsys.readouterr().out


def test_merge_taylor_cli(bigram_run, capsys):
    _, _, ckpts = bigram_run
    rc, out = _json(capsys, ["merge-taylor", *map(str, ckpts)])
    assert rc == 0 and len(out["cross"]) == 3 and out["hvps"] == 3 and out["weights"] == pytest.approx([1 / 3] * 3)
    # Second order on a real model: the prediction has the measured sign and size.
    assert out["predicted_gain"] < 0 and out["measured_gain"] < 0
    assert out["predicted_gain"] == pytest.approx(out["measured_gain"], rel=0.5)
    rc, out = _json(capsys, ["merge-taylor", *map(str, ckpts[1:]), "--weights", "1,3"])
    assert rc == 0 and out["weights"] == [0.25, 0.75]


def test_plane_cli_marks_and_plot(bigram_run, capsys, tmp_path):
    _, _, ckpts = bigram_run
    png = tmp_path / "plane.png"
    rc, out = _json(capsys, ["plane", *map(str, ckpts), "--grid", "3", "--mark", str(ckpts[0]), "--plot", str(png)])
    assert rc == 0 and png.is_file() and len(out["losses"]) == 3
    names = [p["name"] for p in out["points"]]
    assert names[:4] == ["A", "B", "C", "merge"] and names[4].startswith("mark1")
    assert out["points"][4]["x"] == pytest.approx(0.0, abs=1e-5)  # the mark is A itself


def test_hill_along_trains_in_a_temporary_dir_and_leaves_the_run_alone(bigram_run, capsys, tmp_path):
    run, _, ckpts = bigram_run
    before = _tree(run)
    png = tmp_path / "hill.png"
    rc, out = _json(capsys, ["hill", "--along", str(run), "--every", "2", "--length", "3", "--plot", str(png)])
    assert rc == 0 and png.is_file() and _tree(run) == before
    pts = out["points"]
    assert [p["step"] for p in pts] == [4, 12] and all(p["decay_steps"] == 3 for p in pts)
    assert all(p["hill"] == pytest.approx(p["loss"] - p["decayed_loss"]) for p in pts)
    rc, one = _json(capsys, ["hill", str(ckpts[-1]), "--length", "3", "--lr", "0.001"])
    assert rc == 0 and one["points"][0]["start_lr"] == pytest.approx(0.001)


@pytest.mark.parametrize("argv,match", [
    (["interpolate", "{c0}", "{c1}", "--points", "1"], "--points"),
    (["interpolate", "{c0}", "{c1}", "--plot", "{c0}/x.png"], "inside the input"),
    (["interpolate", "{c0}", "{missing}"], "not found"),
    (["plane", "{c0}", "{c1}", "{c1}"], "plane"),
    (["hill"], "needs a checkpoint or --along"),
    (["sharpness", "{c0}", "--top", "0"], "--top"),
    (["merge-taylor", "{c0}", "{c1}", "--weights", "1"], "--weights"),
])
def test_bad_input_exits_2_with_a_message(bigram_run, capsys, tmp_path, argv, match):
    _, _, ckpts = bigram_run
    subst = {"c0": ckpts[0], "c1": ckpts[1], "missing": tmp_path / "nope"}
    assert main(["probe", *[a.format(**subst) for a in argv], "--no-progress"]) == 2
    assert match in capsys.readouterr().err


def test_incompatible_checkpoints_name_the_tensor_or_key(bigram_run, capsys, tmp_path):
    _, _, ckpts = bigram_run
    bad = tmp_path / "bad"
    shutil.copytree(ckpts[0], bad)
    t = load_file(str(bad / layout.MODEL_FILE))
    t["model.norm.weight"] = torch.ones(7)
    save_file(t, str(bad / layout.MODEL_FILE))
    assert main(["probe", "interpolate", str(ckpts[1]), str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "tensor model.norm.weight" in err and str(bad) in err
    other = tmp_path / "other"
    shutil.copytree(ckpts[0], other)
    state = json.loads((other / layout.STATE_FILE).read_text())
    state["config"]["model"]["rope_theta"] = 500.0
    (other / layout.STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="model.rope_theta=500.0"):
        open_checkpoints([ckpts[1], other])


def test_hf_directory_needs_a_config_and_then_probes(bigram_run, capsys, tmp_path):
    from riverbed.checkpoints.hf import export_hf

    run, cfg, ckpts = bigram_run
    setup, (p,) = open_checkpoints(ckpts[-1:])
    hf = tmp_path / "hf"
    export_hf(setup.cfg.model, load_file(str(ckpts[-1] / layout.MODEL_FILE)), hf)
    assert main(["probe", "interpolate", str(hf), str(ckpts[0]), "--no-progress"]) == 2
    assert "--config" in capsys.readouterr().err
    rc, out = _json(capsys, ["interpolate", str(hf), str(ckpts[-1]), "--points", "2", "--config", str(cfg)])
    assert rc == 0 and out["losses"][0] == pytest.approx(setup.objective.loss(p)) == pytest.approx(out["losses"][1])
    assert main(["probe", "hill", str(hf), "--no-progress"]) == 2  # a decay branch needs optimizer state
    assert "needs a riverbed checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_experiment_bigram_quick(tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["experiment", "bigram", "--quick", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    s = res["summary"]
    assert (out / "bigram.png").is_file() and (out / "results.md").is_file() and s["seeds"] == 1
    assert s["decayed_loss"]["mean"] > s["entropy_rate"] > 0 and set(s["bucket_drop"]) <= {"deterministic", "low", "mid", "high"}
    assert res["runs"][0]["sharpness"][-1]["branch"].startswith("linear")
