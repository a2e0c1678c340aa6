"""`riverbed merge` end to end, in-process."""

import json
import time

import torch

from riverbed.checkpoints import layout
from riverbed.cli.main import main
from merging.helpers import load_dir, random_state, reference, write_dir  # tests/ is on sys.path (rootdir packages)


def test_merge_inputs_end_to_end(tmp_path, capsys):
    sds = [random_state(i) for i in range(3)]
    paths = [str(write_dir(tmp_path / f"in{i}", sd)) for i, sd in enumerate(sds)]
    rc = main(["merge", str(tmp_path / "out"), *paths, "--method", "ema", "--alpha", "0.5", "--dtype", "bf16", "--max-shard-size", "5KB", "--threads", "2", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "0.250000" in text and "0.500000" in text and "wrote" in text
    got = load_dir(tmp_path / "out")
    ref = reference(sds, (0.25, 0.25, 0.5))
    for k, v in ref.items():
        assert got[k].dtype == torch.bfloat16
        assert torch.allclose(got[k].double(), v, rtol=1e-2, atol=1e-2)
    assert (tmp_path / "out" / "model.safetensors.index.json").exists()
    assert json.loads((tmp_path / "out" / "merge.json").read_text())["effective_weights"] == [0.25, 0.25, 0.5]


def test_merge_from_run_and_dry_run(tmp_path, capsys):
    run = tmp_path / "run"
    for s in range(100, 601, 100):
        write_dir(layout.checkpoint_dir(run, "main", s), random_state(s), state={"step": s, "tokens": 10 * s})
    rc = main(["merge", str(tmp_path / "out"), "--run", str(run), "--last", "3", "--every", "200", "--method", "wma", "--wma-by", "step", "--dry-run"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "steps 200, 400, 600" in text and "0.166667" in text and "0.500000" in text
    assert not (tmp_path / "out").exists()
    rc = main(["merge", str(tmp_path / "out"), "--run", str(run), "--last", "2", "--every", "2000", "--unit", "tokens", "--no-progress"])
    assert rc == 0
    recipe = json.loads((tmp_path / "out" / "merge.json").read_text())
    assert [p.rsplit("/", 1)[-1] for p in recipe["inputs"]] == ["step_0000000400", "step_0000000600"]


def test_merge_user_errors_exit_2(tmp_path, capsys):
    a = write_dir(tmp_path / "a", random_state(0))
    shapes = {k: tuple(v.shape) for k, v in random_state(0).items()} | {"model.norm.weight": (25,)}
    b = write_dir(tmp_path / "b", random_state(1, shapes=shapes))
    assert main(["merge", str(tmp_path / "out"), str(a), str(b), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'model.norm.weight' has shape [24]" in err and str(b / "model.safetensors") in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    assert main(["merge", str(tmp_path / "out"), str(a), str(a), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "o2"), str(a), str(a), "--method", "weights", "--weights", "1,-1"]) == 2
    assert "sum to a positive number" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "o2"), "--run", str(tmp_path), "--last", "2", "--every", "1"]) == 2
    assert "is neither a riverbed run" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "o2")]) == 2
    assert "nothing to merge" in capsys.readouterr().err


def test_progress_lines_when_not_a_terminal(tmp_path, capsys, monkeypatch):
    """A bar written to a log or CI stays at its first frame; plain lines show the progress instead."""
    from riverbed.io import progress
    from riverbed.merging import engine

    monkeypatch.setattr(engine, "CHUNK_ELEMS", 256)  # many chunks from tiny inputs
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    real_read = engine._Reader.read

    def slow_read(self, *a):  # a merge long enough for the 0.1 s progress poll to see it move
        time.sleep(0.01)
        return real_read(self, *a)

    monkeypatch.setattr(engine._Reader, "read", slow_read)
    paths = [str(write_dir(tmp_path / f"in{i}", random_state(i))) for i in range(2)]
    assert main(["merge", str(tmp_path / "out"), *paths, "--threads", "1"]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("merging:")]
    pcts = [int(ln.split()[1].rstrip("%")) for ln in lines]
    assert len(lines) >= 3 and pcts == sorted(pcts) and pcts[-1] == 100 and pcts[0] < 100
    assert "MB/s" in lines[0]
