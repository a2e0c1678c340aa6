"""Scaling laws fitted from finished models: branch endpoints, cosine runs, PMA merges or a CSV.

Laws (``laws``): ``data`` L(D) = E + B/D^beta for one model size, ``chinchilla``
L(N, D) = E + A/N^alpha + B/D^beta. Fits (``fit_law``) follow Chinchilla's approach 3 as
Epoch AI replicates it: log-sum-exp parametrisation, summed Huber(1e-3) on log loss, L-BFGS
from the full grid, best start reported; bootstrap intervals, predictions and the
compute-optimal frontier.

>>> from riverbed.scaling import load_points, fit_law, predict, frontier   # doctest: +SKIP
>>> fit = fit_law(load_points(["chinchilla.csv"]), "chinchilla", bootstrap=200)  # doctest: +SKIP
>>> frontier(fit, 5.76e23).n_opt.value                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

from riverbed.io.atomic import write_json
from riverbed.errors import ScalingError
from riverbed.scaling.fit import FitResult, FitWarning, fit_law
from riverbed.scaling.laws import LAWS, Law, get_law
from riverbed.scaling.points import Columns, Points, drop_highest, load_csv
from riverbed.scaling.predict import Estimate, FrontierPoint, frontier, optimal_allocation, predict
from riverbed.scaling.sources import load_points, load_run


def load_fit(path: str) -> FitResult:
    """Read a fit written by ``riverbed scaling fit -o FIT.json`` (or ``save_fit``)."""

    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScalingError(f"cannot read fit {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ScalingError(f"{path} is not JSON ({exc})") from None
    try:
        return FitResult.from_json(obj)
    except ScalingError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ScalingError(f"{path}: malformed fit file ({exc})") from None


def save_fit(fit: FitResult, path: str) -> None:
    """Write ``fit`` as JSON, atomically."""
    write_json(path, fit.to_json())


__all__ = [
    "LAWS",
    "Columns",
    "Estimate",
    "FitResult",
    "FitWarning",
    "FrontierPoint",
    "Law",
    "Points",
    "drop_highest",
    "fit_law",
    "frontier",
    "get_law",
    "load_csv",
    "load_fit",
    "load_points",
    "load_run",
    "optimal_allocation",
    "predict",
    "save_fit",
]
