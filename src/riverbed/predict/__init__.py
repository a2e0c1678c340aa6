"""riverbed.predict: schedule-aware loss laws that predict a loss curve without training it.

Fit the valley law (riverbed's, the default), the Multi-Power Law (Luo et al. 2025), the annealing-area law
(Tissue et al. 2024) or the forward-momentum law (Wang et al. 2025) on a few
curves (a run tree's main branch and a decay branch, or a user's CSV logs), then predict the
curve of any other LR schedule: an untrained decay branch, a cosine run, the best decay at a budget.
Every fit carries diagnostics and a verdict (usable / unreliable); answers refuse an unreliable fit
unless forced, and every prediction carries a 95 % interval.

(The scaling-law fit of finished models is another stack: ``riverbed.scaling.fit_law``.)

>>> from riverbed.predict import fit_curve_law, read_curve_csv      # doctest: +SKIP
>>> fit = fit_curve_law([read_curve_csv("a.csv"), read_curve_csv("b.csv")], law="mpl")   # doctest: +SKIP
>>> fit.require_usable().predict(read_curve_csv("c.csv", need_loss=False))   # doctest: +SKIP
"""

import warnings as _warnings

from riverbed.predict.bootstrap import bootstrap_curve_fits
from riverbed.predict.curves import Curve, PredictError, curve_from_rows, curve_from_schedule, read_curve, read_curve_csv
from riverbed.predict.diagnose import FitDiagnostics, ParamCheck, UnreliableFit
from riverbed.predict.fit import CurveResiduals, LawFit, fit_curve_law
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
    "FitDiagnostics",
    "LawFit",
    "MPLTerms",
    "ParamCheck",
    "PredictError",
    "TissueTerms",
    "UnreliableFit",
    "bootstrap_curve_fits",
    "curve_from_rows",
    "curve_from_schedule",
    "fit_curve_law",
    "mpl_loss",
    "read_curve",
    "read_curve_csv",
    "tissue_loss",
]

_RENAMED = {"fit_law": "fit_curve_law", "bootstrap_fits": "bootstrap_curve_fits"}


def __getattr__(name: str) -> object:
    # The old names collided with riverbed.scaling's fit_law / bootstrap_fits (another stack).
    if name in _RENAMED:
        _warnings.warn(f"riverbed.predict.{name} is now {_RENAMED[name]}", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module 'riverbed.predict' has no attribute {name!r}")
