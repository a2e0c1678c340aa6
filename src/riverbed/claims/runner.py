"""The claims runner: jobs (one study, one seed) measured independently, then judged per claim.

A :class:`Job` is plain data (study, size, seed); :func:`run_job` runs it in a fresh scratch
directory and returns a JSON-able dict (``values``: claim id -> number, ``extras``, ``seconds``),
so any executor that can call a function (a process pool, a cluster) can run the jobs.
:func:`run_claims` plans the jobs of the selected claims, runs them through ``execute`` (default:
here, one after the other) and judges each claim from its per-seed numbers.

>>> judge(CLAIMS[0], [0.02, 0.03, 0.025]).verdict
'holds'
>>> [j.seed for j in plan_jobs(["epoch-refit", "wsds-vs-wsd"], "quick", 2)]
[0, 0, 1]
>>> sorted({j.model for j in plan_jobs(["pma-beats-last"], "quick", 1)})
['1m', 'tiny']
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from riverbed.claims import studies
from riverbed.claims.catalog import CLAIMS, ClaimSpec
from riverbed.claims.verdict import MAX_SEEDS, verdict
from riverbed.errors import ConfigError, RunError


@dataclass(frozen=True)
class Job:
    """One study at one size for one seed (and one model preset): an independent unit of work."""

    study: str
    size: str
    seed: int
    model: str = "tiny"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClaimResult:
    id: str
    claim: str
    source: str
    measured: str
    threshold: float
    mean: float
    stderr: float | None
    seeds: int
    verdict: str
    rule: str
    values: tuple[float, ...]
    ci95: tuple[float, float] | None = None
    """95 % Student t interval of the mean (n - 1 degrees of freedom)."""
    seeds_needed: int | None = None
    """Seeds the observed mean and spread would need for ci95 to exclude the threshold."""
    model: str = "tiny"
    heldout_se: float | None = None
    """Mean over seeds of the held-out set's sampling error of one seed's number (where the study reports it)."""
    precondition: str | None = None
    """The precondition's outcome in words (where the claim has one)."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "claim": self.claim, "source": self.source,
                "measured": self.measured, "threshold": self.threshold, "mean": self.mean, "stderr": self.stderr,
                "seeds": self.seeds, "ci95": None if self.ci95 is None else list(self.ci95),
                "verdict": self.verdict, "seeds_needed": self.seeds_needed, "rule": self.rule,
                "values": list(self.values), "heldout_se": self.heldout_se, "precondition": self.precondition}

    @property
    def seeds_note(self) -> str:
        """How many seeds a decisive verdict needs, in words (the table's column)."""
        if self.seeds_needed is None:
            return "-" if self.verdict != "inconclusive" or self.seeds == 1 else "none would do"
        if self.seeds_needed <= self.seeds:
            return f"{self.seeds_needed} (run {self.seeds})"
        more = f"> {MAX_SEEDS}" if self.seeds_needed > MAX_SEEDS else str(self.seeds_needed)
        return f"{more} (run {self.seeds}: not affordable here)"


def select(only: Sequence[str] | None = None) -> tuple[ClaimSpec, ...]:
    """The claims named in ``only`` (claim ids or study names; None: all), in table order."""
    if not only:
        return CLAIMS
    known = {c.id for c in CLAIMS} | set(studies.STUDIES)
    bad = [o for o in only if o not in known]
    if bad:
        raise ConfigError(f"--only {','.join(bad)}: unknown claim or study; known claims: "
                          f"{', '.join(c.id for c in CLAIMS)}; studies: {', '.join(studies.STUDIES)}")
    return tuple(c for c in CLAIMS if c.id in only or c.study in only)


def plan_jobs(only: Sequence[str] | None, size: str, seeds: int | None = None,
              models: Sequence[str] | None = None) -> list[Job]:
    """One job per (study, model, seed) the selected claims need; a deterministic study runs once.
    ``seeds`` None: each study's own number (``studies.SEEDS``: what its claims need, where affordable);
    ``models``: only these model sizes of claims measured at several (default: all of each claim's)."""
    if size not in studies.SIZES:
        raise ConfigError(f"size {size!r}: expected one of {', '.join(studies.SIZES)}")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"--seeds {seeds!r}: expected a positive number of seeds")
    claims = select(only)
    known = {m for c in CLAIMS for m in c.models}
    if models is not None and (not models or set(models) - known):
        raise ConfigError(f"--models {','.join(models)}: expected some of {', '.join(sorted(known))}")

    def keep(c: ClaimSpec) -> tuple[str, ...]:
        kept = tuple(m for m in c.models if models is None or m in models)
        return kept or c.models[:1]  # a claim measured at one size keeps it

    needed = {s: tuple(dict.fromkeys(m for c in claims if c.study == s for m in keep(c)))
              for s in dict.fromkeys(c.study for c in claims)}
    count = {s: 1 if s in studies.DETERMINISTIC else (seeds or studies.SEEDS[s]) for s in needed}
    # seed-major: every study's first seed comes first (a failing study shows up early)
    return [Job(s, size, seed, m) for seed in range(max(count.values())) for s, models in needed.items()
            for m in models if seed < count[s]]


def run_job(job: Job | dict[str, Any], workdir: str | Path | None = None) -> dict[str, Any]:
    """Run one job in a temporary directory (removed after); returns plain JSON-able results."""
    if isinstance(job, dict):
        job = Job(**job)
    measure = studies.get(job.study)
    if job.model not in studies.MODELS.get(job.study, ("tiny",)):
        raise ConfigError(f"study {job.study}: model {job.model!r} is not one it measures "
                          f"({', '.join(studies.MODELS.get(job.study, ('tiny',)))})")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"riverbed-claims-{job.study}-", dir=workdir) as tmp:
        out = measure(job.size, job.seed, Path(tmp), job.model)
    values = {k: float(v) for k, v in out["values"].items()}
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise RunError(f"study {job.study} seed {job.seed}: non-finite measurement(s) {bad} (a diverged run?)")
    return {"job": job.to_json(), "values": values, "extras": out.get("extras", {}),
            "sampling": {k: float(v) for k, v in out.get("sampling", {}).items()}, "seconds": time.perf_counter() - t0}


def judge(spec: ClaimSpec, values: Sequence[float], *, model: str = "tiny", pre: Sequence[float] | None = None,
          sampling: Sequence[float] | None = None) -> ClaimResult:
    """The verdict of one claim from its per-seed numbers (pure: the tests feed it made-up ones).
    ``pre``: the per-seed numbers of its precondition (required where it has one); ``sampling``:
    each seed's held-out sampling error of its number."""
    v = verdict(values, spec.threshold, larger_holds=spec.larger_holds, deterministic=spec.deterministic, what=spec.id)
    outcome, rule = None, v.rule
    if spec.precondition is not None:
        if pre is None:
            raise ConfigError(f"claim {spec.id}: no measurement of its precondition {spec.precondition.key!r}")
        p = verdict(pre, spec.precondition.threshold, what=spec.precondition.key)
        outcome = f"{spec.precondition.text}: {p.verdict} (mean {p.mean:+.4g})"
        rule = f"{rule}; first, {spec.precondition.text} must hold on the same rule"
        if p.verdict != "holds":
            v = replace(v, verdict="inconclusive")  # the comparison means nothing until the precondition is shown
    se = statistics.fmean(sampling) if sampling else None
    return ClaimResult(spec.id, spec.claim, spec.source, spec.measured, spec.threshold, v.mean, v.stderr, v.seeds,
                       v.verdict, rule, tuple(float(x) for x in values), v.ci95, v.seeds_needed, model, se, outcome)


def saved_results(doc: Any, where: str) -> list[dict[str, Any]]:
    """The job results of a saved ``riverbed claims --json`` document, checked as :func:`run_job` checks a fresh
    one (every measurement a finite number); ConfigError names what is wrong."""
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list) or not jobs:
        raise ConfigError(f"{where}: not the --json output of `riverbed claims` (no \"jobs\" list)")
    for i, r in enumerate(jobs):
        job = r.get("job") if isinstance(r, dict) else None
        if not isinstance(job, dict) or job.get("study") not in studies.STUDIES or isinstance(job.get("seed"), bool) \
                or not isinstance(job.get("seed"), int) or not isinstance(r.get("values"), dict):
            raise ConfigError(f"{where}: jobs[{i}] is not a claims job result (job.study, job.seed, values)")
        for part in ("values", "sampling"):
            for k, v in (r.get(part) or {}).items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ConfigError(f"{where}: jobs[{i}].{part}.{k} is not a finite number ({v!r})")
    return jobs


def judge_jobs(claims: Sequence[ClaimSpec], results: Sequence[dict[str, Any]]) -> list[ClaimResult]:
    """Judge each claim at each of its models from the results of its study's jobs (in seed order);
    a claim's models come out side by side."""
    out = []
    for c in claims:
        for model in c.models:
            rows = sorted((r for r in results if r["job"]["study"] == c.study
                           and r["job"].get("model", "tiny") == model), key=lambda r: r["job"]["seed"])
            if not rows:
                if any(r["job"]["study"] == c.study for r in results):
                    continue  # a model size that was not run (--models): the others are judged
                raise ConfigError(f"claim {c.id}: no result of study {c.study!r} to judge it from")
            pre = [r["values"][c.precondition.key] for r in rows] if c.precondition is not None else None
            sampling = [r["sampling"][c.id] for r in rows if c.id in r.get("sampling", {})]
            out.append(judge(c, [r["values"][c.id] for r in rows], model=model, pre=pre,
                             sampling=sampling if len(sampling) == len(rows) else None))
    return out


Executor = Callable[[Sequence[Job]], list[dict[str, Any]]]


def run_local(jobs: Sequence[Job], *, processes: int = 1, workdir: str | Path | None = None,
              on_job: Callable[[Job, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` here: in order, or in ``processes`` worker processes (results in job order)."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"--jobs {processes!r}: expected a positive number of processes")
    if processes == 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(run_job(job, workdir))
            if on_job is not None:
                on_job(job, results[-1])
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork where the platform has it (the parent has not imported torch: the studies import it lazily)
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    done: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(min(processes, len(jobs)), mp_context=ctx) as pool:
        futures = {pool.submit(run_job, job, workdir): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            i = futures[fut]
            done[i] = fut.result()
            if on_job is not None:
                on_job(jobs[i], done[i])
    return [done[i] for i in range(len(jobs))]


def claims_job(p: dict[str, Any]) -> dict[str, Any]:
    """One study for one seed as an executor job (one cell of the claims grid): the job function
    the claims tasks name (``CLAIMS_JOB``)."""
    return run_job(p["job"], p.get("workdir"))


#: The job kind of a claims cell: this module's job function, named for riverbed.executors.jobs.
CLAIMS_JOB = f"{__name__}:claims_job"


def run_on_executor(executor: Any, jobs: Sequence[Job], *, workdir: str | Path | None = None, progress: bool = False,
                    on_job: Callable[[Job, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` as jobs of a riverbed executor (a backend name, ExecutorConfig or Executor:
    riverbed.executors), results in job order; each job is :func:`run_job` in its own process.
    ``on_job(job, result)`` hears each result as its job ends."""
    from riverbed.executors.base import Task  # lazy: the executors load their backends only when asked
    from riverbed.executors.cells import run_cells  # lazy: as above

    with tempfile.TemporaryDirectory(prefix="riverbed-claims-jobs-", dir=workdir) as tmp:
        tasks = [Task(CLAIMS_JOB, {"job": j.to_json(), "workdir": None if workdir is None else str(workdir), "threads": 1},
                      f"{j.study} seed {j.seed}") for j in jobs]
        hear = None if on_job is None else (lambda i, result: on_job(jobs[i], result))
        return run_cells(executor, tasks, folder=Path(tmp) / "jobs", progress=progress, on_result=hear)


def run_claims(size: str = "quick", seeds: int | None = None, *, only: Sequence[str] | None = None,
               models: Sequence[str] | None = None,
               workdir: str | Path | None = None, processes: int = 1, execute: Executor | None = None,
               executor: Any = None, on_job: Callable[[Job, dict[str, Any]], None] | None = None,
               ) -> tuple[list[ClaimResult], list[dict[str, Any]]]:
    """Measure the selected claims over ``seeds`` seeds at ``size``; returns (verdicts, job results).

    ``execute`` runs a list of jobs and returns their results in job order; ``executor`` runs
    them as riverbed.executors jobs (local pool, Ray, Slurm); default: :func:`run_local` with
    ``processes`` workers, calling ``on_job`` after each job.
    """
    claims = select(only)
    jobs = plan_jobs(only, size, seeds, models)
    if executor is not None:
        results = run_on_executor(executor, jobs, workdir=workdir)
    elif execute is None:
        results = run_local(jobs, processes=processes, workdir=workdir, on_job=on_job)
    else:
        results = list(execute(jobs))
    return judge_jobs(claims, results), results
