"""riverbed.claims: the seed claims riverbed can test, re-measured at small scale over seeds.

>>> from riverbed.claims import run_claims, QUICK           # doctest: +SKIP
>>> [r.verdict for r in run_claims(QUICK, seeds=2)]           # doctest: +SKIP
"""

from riverbed.claims.runner import CLAIMS, FULL, QUICK, ClaimResult, ClaimSpec, judge, run_claims
from riverbed.claims.verdict import Verdict, verdict

__all__ = ["CLAIMS", "FULL", "QUICK", "ClaimResult", "ClaimSpec", "Verdict", "judge", "run_claims", "verdict"]
