"""riverbed.claims: the seed claims riverbed can test, re-measured at small scale over seeds.

>>> from riverbed.claims import run_claims                                  # doctest: +SKIP
>>> verdicts, jobs = run_claims("quick", seeds=3)                           # doctest: +SKIP
>>> [(r.id, r.verdict) for r in verdicts]                                   # doctest: +SKIP
"""

from riverbed.claims.catalog import CLAIMS, ClaimSpec, by_id
from riverbed.claims.runner import ClaimResult, Job, judge, judge_jobs, plan_jobs, run_claims, run_job, select
from riverbed.claims.verdict import Verdict, verdict

__all__ = ["CLAIMS", "ClaimResult", "ClaimSpec", "Job", "Verdict", "by_id", "judge", "judge_jobs", "plan_jobs",
           "run_claims", "run_job", "select", "verdict"]
