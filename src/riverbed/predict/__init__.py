"""riverbed.predict: schedule-aware loss laws that predict a loss curve without training it.

Fit the valley law (riverbed's, the default), the Multi-Power Law (Luo et al. 2025), the annealing-area law
(Tissue et al. 2024) or the forward-momentum law (Wang et al. 2025) on a few
curves (a run tree's main branch and a decay branch, or a user's CSV logs), then predict the
curve of any other LR schedule: an untrained decay branch, a cosine run, the best decay at a budget.

>>> from riverbed.predict import fit_law, read_curve_csv           # doctest: +SKIP
>>> fit = fit_law([read_curve_csv("a.csv"), read_curve_csv("b.csv")], law="mpl")   # doctest: +SKIP
>>> fit.predict(read_curve_csv("c.csv", need_loss=False))          # doctest: +SKIP
"""

from riverbed.predict.curves import Curve, PredictError, curve_from_rows, curve_from_schedule, read_curve_csv
from riverbed.predict.fit import CurveResiduals, LawFit, bootstrap_fits, fit_law
from riverbed.predict.forecast import Forecast, Forecaster
from riverbed.predict.laws import DEFAULT_LAW, LAW_SPECS, LAWS, LawSpec, MPLTerms, TissueTerms, mpl_loss, tissue_loss
from riverbed.predict.momentum import MomentumTerms, momentum_loss
from riverbed.predict.optimize import OptimalSchedule, optimize_schedule
from riverbed.predict.valley import ValleyTerms, valley_loss

__all__ = [
    "DEFAULT_LAW",
    "Forecast",
    "Forecaster",
    "OptimalSchedule",
    "optimize_schedule",
    "LAWS",
    "LAW_SPECS",
    "LawSpec",
    "MomentumTerms",
    "ValleyTerms",
    "momentum_loss",
    "valley_loss",
    "Curve",
    "CurveResiduals",
    "LawFit",
    "MPLTerms",
    "PredictError",
    "TissueTerms",
    "bootstrap_fits",
    "curve_from_rows",
    "curve_from_schedule",
    "fit_law",
    "mpl_loss",
    "read_curve_csv",
    "tissue_loss",
]
