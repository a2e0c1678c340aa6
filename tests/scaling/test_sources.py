import pytest

from riverbed.errors import ScalingError
from riverbed.scaling import fit_law, load_points

from .helpers import fake_run, law_run
from .test_epoch import SUB_GRID

TRUE = {"E": 2.0, "A": 300.0, "alpha": 0.35, "B": 900.0, "beta": 0.3}
TOKENS = [2e6, 4e6, 8e6, 1.6e7, 3.2e7]


def test_run_directories_give_finished_points(tmp_path):
    runs = [law_run(tmp_path / f"s{i}", n, TOKENS, TRUE) for i, n in enumerate((1e6, 3e6, 1e7))]
    pts = load_points(runs)
    assert len(pts) == 15
    assert set(pts.kinds) == {"decay"}
    assert pts.labels[0] == "s0/decay-2000000"
    assert pts.units[0] == "tokenizer=byte, vocab=256"
    assert pts.meta[0]["flops"] == pytest.approx(6 * 1e6 * 2e6)
    fit = fit_law(pts, "chinchilla", grid=SUB_GRID)
    for k, v in TRUE.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k


def test_wsds_and_cosine_points_are_finished(tmp_path):
    run = fake_run(tmp_path / "r", 10**6, [("wsds", "wsds", 10**6, 3.0), ("cos", "cosine", 2 * 10**6, 2.9), ("d", "decay", 4 * 10**6, 2.8)])
    pts = load_points([run])
    assert sorted(pts.kinds) == ["cosine", "decay", "wsds"]
    assert "r/wsds@1000000" in pts.labels


def test_run_without_finished_branches(tmp_path):
    run = fake_run(tmp_path / "empty", 10**6, [])
    with pytest.raises(ScalingError, match="run .*empty has no finished branches"):
        load_points([run])


def test_not_a_run_and_mixed_tokenizers(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ScalingError, match="plain.*not a riverbed run"):
        load_points([tmp_path / "plain"])
    a = law_run(tmp_path / "a", 1e6, TOKENS, TRUE)
    b = law_run(tmp_path / "b", 3e6, TOKENS, TRUE, tokenizer="bpe", vocab=4096)
    with pytest.raises(ScalingError, match="mixed units"):
        fit_law(load_points([a, b]), "chinchilla")


def test_merge_points_need_runs(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("N,D,loss\n1,2,3\n")
    with pytest.raises(ScalingError, match="--points merge needs run directories"):
        load_points([csv], points="merge")
