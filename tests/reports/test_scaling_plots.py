"""Fit plots: a log loss axis that follows the data, the band kept to the data range, the
region beyond the data marked (issue 10: the data-law plot put the points flat at 0 on a
linear axis up to 2000)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from riverbed.scaling import Points, fit_law, get_law  # noqa: E402
from riverbed.reports.scaling_plots import fit_figure, plot_fit  # noqa: E402


def _spans(ax) -> list[tuple[float, float]]:
    # axvspan patches: x extent of each shaded rectangle
    return [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches if p.get_height() > 0]


@pytest.mark.filterwarnings("ignore::riverbed.scaling.fit.FitWarning")
def test_data_law_plot_log_axis_and_data_range(tmp_path):
    d = np.array([1e8, 2e8, 4e8, 8e8])
    loss = (1.9 + 3000 / d**0.4) * (1 + 0.01 * np.sin(np.arange(4) * 7))  # noisy: a wide band beyond the data
    fit = fit_law(Points.from_arrays([1e8] * 4, d, loss), "data", bootstrap=30)
    fig = fit_figure(fit)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    lo, hi = ax.get_ylim()
    assert loss.min() / 1.2 < lo < loss.min() and loss.max() < hi < loss.max() * 1.2
    # the band is drawn over the data's D range only
    band = [c for c in ax.collections if "band" in (c.get_label() or "")]
    assert band and np.all(np.isclose(band[0].get_paths()[0].vertices[:, 0].min(), d.min()))
    assert band[0].get_paths()[0].vertices[:, 0].max() <= d.max() * (1 + 1e-9)
    # shaded beyond the largest D, and labelled
    assert any(abs(a - d.max()) / d.max() < 1e-9 and b > d.max() for a, b in _spans(ax))
    assert any("beyond the data" in t.get_text() for t in ax.get_legend().get_texts())
    # the fit's caveat (few degrees of freedom) is written on the figure
    assert any("few degrees of freedom" in t.get_text() for t in fig.texts)
    plt.close(fig)
    assert plot_fit(fit, tmp_path / "f.png").stat().st_size > 0


def test_frontier_panel_marks_beyond_largest_c():
    n = np.repeat([1e7, 3e7, 1e8, 3e8], 4)
    d = np.tile([1e8, 3e8, 1e9, 3e9], 4)
    fit = fit_law(Points.from_arrays(n, d, 1.8 + 400 / n**0.34 + 2000 / d**0.37), "chinchilla", grid=get_law("chinchilla").grid()[::30])
    fig = fit_figure(fit)
    ax2 = fig.axes[1]
    c_max = float((6 * n * d).max())
    assert any(abs(a - c_max) / c_max < 1e-9 and b > c_max for a, b in _spans(ax2))
    assert not fig.texts  # 16 points over a 4x4 design: no caveat to print
    plt.close(fig)
