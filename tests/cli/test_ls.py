import json

from riverbed.cli.main import main
from runs.helpers import make_tree


def test_ls_tree_and_accounting(tmp_path, capsys):
    make_tree(tmp_path / "r")
    assert main(["ls", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "linear-from300-len60" in out and "fork @ step 300" in out
    assert "compute accounting" in out
    # tree: main 50K + branches 2K + 6K = 58K tokens; budgets 12K + 36K = 48K (largest 36K)
    assert "58K" in out and "48K" in out and "161 %" in out and "133 %" in out
    assert "38K" in out and "106 %" in out  # main needed only up to its last fork (300)


def test_ls_json(tmp_path, capsys):
    make_tree(tmp_path / "r")
    assert main(["ls", str(tmp_path / "r"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["accounting"]["tree_tokens"] == 58000
    assert [p["tokens"] for p in data["finished_points"]] == [12000, 36000]
    assert data["manifest"]["branches"]["main"]["progress"]["step"] == 500


def test_ls_not_a_run_exits_2(tmp_path, capsys):
    assert main(["ls", str(tmp_path / "missing")]) == 2
    assert "is not a riverbed run" in capsys.readouterr().err
