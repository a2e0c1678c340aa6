"""`riverbed claims --report OUT.html`: the verdict table as one self-contained page (riverbed.reports.html)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from riverbed.checkpoints.outputs import check_output
from riverbed.errors import ReportError
from riverbed.reports.html import Page, check_page_out


def check_out(out: Path) -> None:
    """Refuse a path that is not an .html file or is a page riverbed did not write (before
    anything is measured)."""
    check_page_out(out, "--report")
    check_output(out, flag="--report", error=ReportError)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:+.4g}"


def interval(r: Any) -> str:
    """mean ± se [low, high] (the 95 % t-interval), or the bare value."""
    if r.stderr is None or r.ci95 is None:
        return _fmt(r.mean)
    return f"{_fmt(r.mean)} ± {r.stderr:.3g} [{r.ci95[0]:+.4g}, {r.ci95[1]:+.4g}]"


def heldout_note(r: Any) -> str:
    return "" if r.heldout_se is None else f" (held-out sampling error per seed ±{r.heldout_se:.2g})"


def write_report(out: Path, verdicts: Sequence[Any], results: Sequence[dict[str, Any]], *, size: str,
                 seconds: float) -> Path:
    """Write the page atomically: the verdict table, the rule, per-study times and the raw job results."""
    from riverbed.io.atomic import write_text
    from riverbed.claims.catalog import by_id
    from riverbed.reports.collect import software_versions

    check_out(out)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    seeds = sorted({r.seeds for r in verdicts})
    page = Page("riverbed claims", f"{len(verdicts)} claims · {size} size · {'/'.join(map(str, seeds))} seed(s) · "
                                   f"{seconds:.0f} s · written {stamp}")
    page.add_heading("Verdicts")
    rows = []
    for r in verdicts:
        rows.append([r.claim, r.model, r.source, r.measured + heldout_note(r),
                     f"{'>' if by_id(r.id).larger_holds else '<'} {r.threshold:g}", interval(r), r.seeds,
                     ", ".join(f"{v:+.4g}" for v in r.values),
                     r.verdict + (f" ({r.precondition})" if r.precondition else ""), r.seeds_note])
    page.add_table("one row per claim and model size; each number is oriented as the 'measured' column says",
                   ["claim", "model", "source", "measured per seed", "holds if", "mean ± se [95 % CI]", "seeds",
                    "per seed", "verdict", "seeds needed"], rows)
    page.add_note("Rule: a claim holds if the 95 % Student t interval of its mean (n-1 degrees of freedom) lies on "
                  "the holding side of the threshold, does not hold if it lies on the other side, inconclusive "
                  "otherwise or with one seed. A deterministic claim is judged by its one value. 'Seeds needed': "
                  "how many seeds the observed mean and spread would need for the interval to exclude the threshold.")
    page.add_heading("Jobs")
    page.add_table("one job per study, model and seed", ["study", "model", "seed", "seconds"],
                   [[r["job"]["study"], r["job"].get("model", "tiny"), r["job"]["seed"], f"{r['seconds']:.1f}"]
                    for r in results])
    page.add_pre([{"job": r["job"], "values": r["values"], "extras": r["extras"]} for r in results],
                 summary="raw job results")
    page.add_heading("Software")
    page.add_table("", ["package", "version"], sorted(software_versions().items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page.render())
    return out


def markdown_table(verdicts: Sequence[Any]) -> str:
    """The verdict table as GitHub markdown (what the README shows)."""
    from riverbed.claims.catalog import by_id

    def cell(x: str) -> str:
        return x.replace("|", "\\|")

    lines = ["| claim | model | source | measured per seed | holds if | mean ± se [95 % CI] (seeds) | per seed | verdict "
             "| seeds needed |", "|---|---|---|---|---|---|---|---|---|"]
    for r in verdicts:
        op = ">" if by_id(r.id).larger_holds else "<"
        pre = f" ({cell(r.precondition)})" if r.precondition else ""
        lines.append(f"| {cell(r.claim)} | {r.model} | {cell(r.source)} | {cell(r.measured + heldout_note(r))} | "
                     f"{op} {r.threshold:g} | {interval(r)} ({r.seeds}) | {', '.join(f'{v:+.4f}' for v in r.values)} "
                     f"| **{r.verdict}**{pre} | {r.seeds_note} |")
    return "\n".join(lines) + "\n"
