"""riverbed.landscape: probes of the loss landscape around a run's checkpoints.

Five probes, each a Python function and a ``riverbed probe VERB`` command:

* ``interpolate`` -- held-out loss along the line between two checkpoints (and beyond);
* ``sharpness``   -- top Hessian eigenvalues (Lanczos with full reorthogonalisation on HVPs);
* ``hill``        -- the loss drop of a short decay branch (the hill component) along a run;
* ``plane``       -- held-out loss over the plane through three checkpoints;
* ``merge_taylor``-- the merge gain predicted by second-order cross terms vs the measured one.

>>> from riverbed.landscape import open_checkpoints, interpolate            # doctest: +SKIP
>>> setup, (a, b) = open_checkpoints([ckpt_a, ckpt_b])                      # doctest: +SKIP
>>> interpolate(setup.objective, a, b, points=11).losses                    # doctest: +SKIP
"""

from __future__ import annotations

from riverbed.landscape.hill import HillPoint, hill, hill_along
from riverbed.landscape.inputs import ProbeSetup, check_same_model, open_checkpoints
from riverbed.landscape.lanczos import Spectrum, lanczos
from riverbed.landscape.logit_table import LogitTable, dense_hessian
from riverbed.landscape.objective import Objective, Params, model_objective
from riverbed.landscape.probes import Interpolation, MergeTaylor, Plane, interpolate, merge_taylor, plane, sharpness

__all__ = [
    "HillPoint", "Interpolation", "LogitTable", "MergeTaylor", "Objective", "Params", "Plane", "ProbeSetup",
    "Spectrum", "check_same_model", "dense_hessian", "hill", "hill_along", "interpolate", "lanczos", "merge_taylor",
    "model_objective", "open_checkpoints", "plane", "sharpness",
]
