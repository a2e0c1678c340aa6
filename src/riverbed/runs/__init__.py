"""The run tree: a main branch, decay branches forked from its checkpoints, WSD-S and cyclic
runs, their lineage (``run.json``) and the compute accounting.

>>> from riverbed.runs import Run                 # doctest: +SKIP
>>> run = Run.open("demo-run")                    # doctest: +SKIP
>>> run.finished_points()[0].loss                 # doctest: +SKIP
"""

from riverbed.runs.accounting import Accounting, Budget, Spend, account
from riverbed.runs.manifest import BranchRecord, Manifest, Point
from riverbed.runs.run import FinishedPoint, Run

__all__ = ["Accounting", "BranchRecord", "Budget", "FinishedPoint", "Manifest", "Point", "Run", "Spend", "account"]
