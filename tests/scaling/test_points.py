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
        ([1e8] * 3, [1e9, 2e9, 3e9], [3.0, 2.9, 2.8], "3 points cannot determine 5 parameters"),
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
