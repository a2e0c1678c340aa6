import numpy as np
import pytest

from riverbed.errors import ScalingError
from riverbed.scaling import Points, drop_highest, fit_law, load_csv
from riverbed.scaling.points import concat


def write(tmp_path, text, name="pts.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_case_insensitive_and_c_column(tmp_path):
    p = write(tmp_path, "n,C,Loss\n1e8,6e17,3.0\n2e8,2.4e18,2.8\n")
    pts = load_csv(p)
    np.testing.assert_allclose(pts.d, [1e9, 2e9])
    assert pts.labels == ("pts.csv:row 1", "pts.csv:row 2")
    p2 = write(tmp_path, "N,D,loss\n1e8,1e9,3.0\n", "d.csv")
    assert load_csv(p2).d.tolist() == [1e9]


def test_csv_missing_columns_named(tmp_path):
    with pytest.raises(ScalingError, match=r"missing column\(s\) D \(or C\)"):
        load_csv(write(tmp_path, "N,loss\n1,2\n"))
    with pytest.raises(ScalingError, match=r"missing column\(s\) loss"):
        load_csv(write(tmp_path, "N,D,val\n1,2,3\n"))


def test_csv_bad_rows_named(tmp_path):
    with pytest.raises(ScalingError, match="non-numeric values at pts.csv:row 2"):
        load_csv(write(tmp_path, "N,D,loss\n1e8,1e9,3\n1e8,abc,3\n"))
    with pytest.raises(ScalingError, match="no data rows"):
        load_csv(write(tmp_path, "N,D,loss\n"))
    with pytest.raises(ScalingError, match="no such file|cannot read"):
        load_csv(tmp_path / "nope.csv")


def _pts(n, d, loss):
    return Points.from_arrays(n, d, loss)


@pytest.mark.parametrize(
    ("n", "d", "loss", "match"),
    [
        ([1e8] * 6, [1e9, 2e9, np.nan, 4e9, 5e9, 6e9], [3.0] * 6, "D is NaN or infinite at point 2"),
        ([1e8, 1e8, -1, 1e8, 1e8, 1e8], [1e9, 2e9, 3e9, 4e9, 5e9, 6e9], [3.0] * 6, "N must be positive; got -1 at point 2"),
        ([1e8] * 6, [1e9, 2e9, 3e9, 4e9, 5e9, 6e9], [3.0, 0.0, 2.0, 2.0, 2.0, 2.0], "loss must be positive; got 0 at point 1"),
        ([1e8] * 3, [1e9, 2e9, 3e9], [3.0, 2.9, 2.8], "3 distinct points cannot determine 5 parameters"),
        ([1e8, 2e8, 120, 150, 4e8, 5e8], [1e9] * 6, [3.0] * 6, "mixed units.*N jumps from 150 to 1e.08.*point 2, point 3"),
    ],
)
def test_bad_points_named(n, d, loss, match):
    with pytest.raises(ScalingError, match=match):
        fit_law(_pts(n, d, loss), "chinchilla")


def test_mixed_tokenizers_rejected():
    a = Points(np.array([1e8, 1e8]), np.array([1e9, 2e9]), np.array([3.0, 2.9]), ("r1/a", "r1/b"), units=("tokenizer=byte", "tokenizer=byte"))
    b = Points(np.array([2e8, 2e8, 2e8]), np.array([1e9, 2e9, 3e9]), np.array([2.9, 2.8, 2.7]), ("r2/a", "r2/b", "r2/c"), units=("tokenizer=bpe",) * 3)
    with pytest.raises(ScalingError, match="mixed units.*tokenizer=bpe: r2/a.*tokenizer=byte: r1/a"):
        fit_law(concat([a, b]), "chinchilla")


def test_drop_highest():
    pts = _pts([1, 2, 3, 4], [1, 2, 3, 4], [2.0, 5.0, 3.0, 4.0])
    kept, dropped = drop_highest(pts, 2)
    assert dropped == ("point 1", "point 3")
    assert kept.loss.tolist() == [2.0, 3.0]
    assert drop_highest(pts, 0)[0] is pts
    with pytest.raises(ScalingError, match="would drop all 4 points"):
        drop_highest(pts, 4)


def test_data_law_refuses_several_sizes():
    pts = _pts([1e8, 1e8, 2e8, 2e8], [1e9, 2e9, 1e9, 2e9], [3.0, 2.9, 2.8, 2.7])
    with pytest.raises(ScalingError, match="law 'data' is for one model size; the points have 2 sizes"):
        fit_law(pts, "data")


# ---- column names, aliases and TSV (issue 10) --------------------------------------------


def test_wandb_export_aliases(tmp_path):
    # A W&B export: model_size,tokens,flops,eval/loss used to be refused ("missing column(s) N, loss").
    p = write(tmp_path, "Model_Size,tokens,flops,eval/loss\n1e8,1e9,6e17,3.0\n2e8,,2.4e18,2.8\n", "wandb.csv")
    pts = load_csv(p)
    np.testing.assert_allclose(pts.n, [1e8, 2e8])
    np.testing.assert_allclose(pts.d, [1e9, 2e9])  # the empty D cell falls back to C / 6N
    np.testing.assert_allclose(pts.loss, [3.0, 2.8])


def test_tsv_by_extension_and_by_header(tmp_path):
    body = "params\tn_tokens\tval_loss\n1e8\t1e9\t3.0\n1e8\t2e9\t2.9\n"
    for name in ("pts.tsv", "pts.txt"):
        pts = load_csv(write(tmp_path, body, name))
        assert pts.d.tolist() == [1e9, 2e9] and pts.loss.tolist() == [3.0, 2.9]


def test_explicit_columns_override_aliases(tmp_path):
    from riverbed.scaling.points import Columns

    p = write(tmp_path, "size,toks,loss,eval/loss\n1e8,1e9,9.9,3.0\n")
    with pytest.raises(ScalingError, match=r"'loss', 'eval/loss' could each be loss; choose one with --loss-col"):
        load_csv(p)
    pts = load_csv(p, Columns(n="SIZE", d="toks", loss="eval/loss"))
    assert (pts.n[0], pts.d[0], pts.loss[0]) == (1e8, 1e9, 3.0)
    with pytest.raises(ScalingError, match=r"--d-col 'tokens' is not a column; header is \['size'"):
        load_csv(p, Columns(n="size", d="tokens"))


def test_missing_column_lists_aliases_and_flags(tmp_path):
    with pytest.raises(ScalingError, match=r"missing column\(s\) N.*Accepted names \(N: n, params, n_params.*--n-col"):
        load_csv(write(tmp_path, "width,D,loss\n1,2,3\n"))


# ---- distinct points, degrees of freedom, identifiability (issue 9 item 11) ---------------


def test_identical_rows_are_one_point(tmp_path):
    p = write(tmp_path, "N,D,loss\n" + "1e8,1e9,3.0\n" * 8)
    with pytest.raises(ScalingError, match=r"1 distinct points \(8 rows, 7 repeating an earlier \(N, D\)\) cannot determine 3 parameters"):
        fit_law(load_csv(p), "data")


def test_zero_and_few_degrees_of_freedom_warn():
    from riverbed.scaling.fit import FitWarning

    d = np.array([1e8, 4e8, 1.6e9])
    with pytest.warns(FitWarning, match="zero degrees of freedom: 3 distinct points for 3 parameters"):
        fit = fit_law(_pts([1e8] * 3, d, 1.9 + 3000 / d**0.4), "data")
    assert any("zero degrees of freedom" in w for w in fit.warnings)
    assert fit.to_json()["design"]["dof"] == 0
    d = np.geomspace(1e8, 1e10, 5)
    with pytest.warns(FitWarning, match="few degrees of freedom: 5 distinct points for 3 parameters \\(2 to spare\\)"):
        fit_law(_pts([1e8] * 5, d, 1.9 + 3000 / d**0.4), "data")
    d = np.geomspace(1e8, 1e10, 8)
    fit = fit_law(_pts([1e8] * 8, d, 1.9 + 3000 / d**0.4), "data")
    assert not fit.warnings


def test_chinchilla_single_size_or_single_d_warns():
    from riverbed.scaling.fit import FitWarning
    from riverbed.scaling.laws import get_law

    grid = get_law("chinchilla").grid()[::60]  # the warning comes from the design, not the optimum

    d = np.geomspace(1e8, 1e10, 12)
    with pytest.warns(FitWarning, match=r"cannot identify A and alpha: only 1 distinct N \(1e\+08\).*--law data"):
        fit = fit_law(_pts([1e8] * 12, d, 1.9 + 3000 / d**0.4), "chinchilla", grid=grid)
    assert any("cannot identify A and alpha" in w for w in fit.to_json()["warnings"])
    n = np.geomspace(1e7, 1e9, 12)
    with pytest.warns(FitWarning, match=r"cannot identify B and beta: only 1 distinct D"):
        fit_law(_pts(n, [1e9] * 12, 1.9 + 400 / n**0.34), "chinchilla", grid=grid)
