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


def write_report(out: Path, verdicts: Sequence[Any], results: Sequence[dict[str, Any]], *, size: str, seeds: int,
                 seconds: float) -> Path:
    """Write the page atomically: the verdict table, the rule, per-study times and the raw job results."""
    from riverbed.checkpoints.atomic import write_text
    from riverbed.claims.catalog import by_id
    from riverbed.claims.verdict import Z
    from riverbed.reports.collect import software_versions

    check_out(out)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = Page("riverbed claims",
                f"{len(verdicts)} claims · {size} size · {seeds} seed(s) · {seconds:.0f} s · written {stamp}")
    page.add_heading("Verdicts")
    rows = []
    for r in verdicts:
        spread = f"{_fmt(r.mean)} ± {r.stderr:.4g}" if r.stderr is not None else _fmt(r.mean)
        rows.append([r.claim, r.source, r.measured, f"{'>' if by_id(r.id).larger_holds else '<'} {r.threshold:g}",
                     spread, r.seeds, ", ".join(f"{v:+.4g}" for v in r.values), r.verdict])
    page.add_table("one row per claim; each number is oriented as the 'measured' column says",
                   ["claim", "source", "measured per seed", "holds if", "mean ± se", "seeds", "per seed", "verdict"],
                   rows)
    page.add_note(f"Rule: larger-holds claims hold if mean - {Z:g} se > threshold and do not hold if mean + {Z:g} se < "
                  "threshold (mirrored for smaller-holds claims); inconclusive otherwise or with one seed. A "
                  "deterministic claim is judged by its one value.")
    page.add_heading("Jobs")
    page.add_table("one job per study and seed", ["study", "seed", "seconds"],
                   [[r["job"]["study"], r["job"]["seed"], f"{r['seconds']:.1f}"] for r in results])
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

    lines = ["| claim | source | measured per seed | holds if | mean ± se (seeds) | per seed | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in verdicts:
        op = ">" if by_id(r.id).larger_holds else "<"
        se = f" ± {r.stderr:.4f}" if r.stderr is not None else ""
        lines.append(f"| {cell(r.claim)} | {cell(r.source)} | {cell(r.measured)} | {op} {r.threshold:g} | "
                     f"{r.mean:+.4f}{se} ({r.seeds}) | {', '.join(f'{v:+.4f}' for v in r.values)} | **{r.verdict}** |")
    return "\n".join(lines) + "\n"
