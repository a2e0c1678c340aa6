"""Every series of every report figure is there, with the labels and scales a reader relies on."""

import numpy as np
import pytest

from riverbed.reports import figures
from riverbed.reports.collect import MIN_FIT_POINTS, collect_run

from .helpers import TPS, FPT, wsd_tree, wsds_run


def _labels(ax):
    return [line.get_label() for line in ax.lines]


def test_loss_figure_has_main_branches_pma_and_milestones(tmp_path):
    data = collect_run(wsd_tree(tmp_path / "w").path, fit=False)
    fig = figures.loss_figure(data)
    ax = fig.axes[0]
    labels = _labels(ax)
    assert labels[0] == "main"
    assert [lab for lab in labels if lab.startswith("linear-from")] == [
        "linear-from40-len10", "linear-from80-len20", "linear-from120-len30", "linear-from160-len40", "linear-from200-len50"]
    assert "main: PMA merge (pma_eval_loss)" in labels
    pma = ax.lines[labels.index("main: PMA merge (pma_eval_loss)")]
    assert list(pma.get_xdata()) == [s * TPS for s in range(10, 201, 10)]
    assert np.allclose(pma.get_ydata()[0], 2.0 + 3.0 / 2 - 0.05)
    # a decay branch starts at its fork point (the main branch's loss there) and keeps dropping
    d = ax.lines[labels.index("linear-from80-len20")]
    assert d.get_xdata()[0] == 80 * TPS and d.get_ydata()[-1] < d.get_ydata()[0]
    assert ax.get_xlabel() == "tokens" and "nats/token" in ax.get_ylabel()
    flops = figures.loss_figure(data, x="flops").axes[0]
    assert flops.lines[0].get_xdata()[-1] == 200 * TPS * FPT and "FLOPs" in flops.get_xlabel()


def test_wsds_decayed_checkpoints_are_drawn(tmp_path):
    data = collect_run(wsds_run(tmp_path / "s").path, fit=False)
    ax = figures.loss_figure(data).axes[0]
    labels = _labels(ax)
    assert labels[0] == "main (wsds)"
    stars = ax.lines[labels.index("WSD-S / cyclic decayed checkpoints")]
    assert list(stars.get_xdata()) == [50 * TPS, 100 * TPS] and stars.get_marker() == "*"


def test_lr_figure_one_line_per_branch(tmp_path):
    data = collect_run(wsd_tree(tmp_path / "w").path, fit=False)
    ax = figures.lr_figure(data).axes[0]
    assert len(ax.lines) == 6 and ax.get_ylabel() == "learning rate"
    branch = ax.lines[_labels(ax).index("linear-from120-len30")]
    # joined to main at the fork (main's LR there), decaying to 0 at its end
    assert branch.get_xdata()[0] == 120 * TPS and branch.get_ydata()[0] == pytest.approx(1e-2)
    assert branch.get_ydata()[-1] == pytest.approx(0.0)


def test_fit_figure_marks_the_data_range_and_extrapolation(tmp_path):
    data = collect_run(wsd_tree(tmp_path / "w").path)
    assert len(data.points) >= MIN_FIT_POINTS and data.fit is not None, data.fit_note
    ax = figures.fit_figure(data.fit).axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    handles, labels = ax.get_legend_handles_labels()
    for want in ("data range (observed D)", "fit (data range)", "fit (extrapolated)", "finished points", "95% bootstrap band"):
        assert want in labels
    inside = ax.lines[_labels(ax).index("fit (data range)")]
    d = sorted(p.tokens for p in data.points)
    assert inside.get_xdata().min() >= d[0] and inside.get_xdata().max() <= d[-1]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert dashed and max(line.get_xdata().max() for line in dashed) > 5 * d[-1]


def test_too_few_points_give_no_fit_and_say_why(tmp_path):
    data = collect_run(wsd_tree(tmp_path / "w", forks=(40, 80)).path)
    assert data.fit is None and "2 finished point(s)" in data.fit_note


def test_compare_figure_overlays_runs_on_tokens_and_flops(tmp_path):
    a = collect_run(wsd_tree(tmp_path / "wsd").path, label="wsd", fit=False)
    b = collect_run(wsds_run(tmp_path / "wsds").path, label="wsds", fit=False)
    for x in ("tokens", "flops"):
        ax = figures.compare_figure([a, b], x=x).axes[0]
        labels = _labels(ax)
        assert "wsd" in labels and "wsds" in labels and "wsd: PMA merge" in labels and "wsds: decayed checkpoints" in labels
        assert ax.lines[labels.index("wsd")].get_color() != ax.lines[labels.index("wsds")].get_color()
    lr = figures.compare_figure([a, b], series="lr").axes[0]
    assert lr.get_ylabel() == "learning rate" and {"wsd", "wsds"} <= set(_labels(lr))
