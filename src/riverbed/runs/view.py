"""What `riverbed ls` shows: the run tree (rich) and its JSON form."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.tree import Tree

from riverbed.runs.accounting import Accounting, run_accounting
from riverbed.runs.manifest import BranchRecord, Point
from riverbed.runs.run import Run


def human(x: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M' (SI prefixes), None -> '-'."""
    if x is None:
        return "-"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= factor:
            return f"{x / factor:.3g}{prefix}{unit}"
    return f"{x:.4g}{unit}" if isinstance(x, float) else f"{x}{unit}"


def schedule_label(spec: dict[str, Any]) -> str:
    kind = spec.get("kind") or spec.get("type") or "?"
    bits = [str(kind)]
    for key in ("shape", "decay_shape", "min_ratio", "warmup"):
        if key in spec and not isinstance(spec[key], dict):
            bits.append(f"{key}={spec[key]}")
    return " ".join(bits)


def _loss(p: Point | None) -> str:
    return "-" if p is None or p.eval_loss is None else f"{p.eval_loss:.4f}"


_STATUS_STYLE = {"queued": "magenta", "running": "yellow", "stopped": "cyan", "finished": "green", "failed": "red"}


def branch_line(b: BranchRecord, *, missing: bool = False) -> str:
    last = b.last
    own = None
    if last is not None:
        own = last.tokens - (b.fork.tokens if b.fork else 0)
    parts = [f"[bold]{b.name}[/bold] [dim]({b.kind}: {schedule_label(b.schedule)})[/dim]"]
    if b.fork is not None:
        parts.append(f"fork @ step {b.fork.step} ({human(b.fork.tokens)} tok, loss {_loss(b.fork)})")
    if last is not None:
        parts.append(f"step {last.step}, {human(last.tokens)} tok (+{human(own)} own), {human(last.flops)} FLOPs")
    loss = b.final if b.final is not None else b.progress
    parts.append(f"held-out {_loss(loss)}")
    style = _STATUS_STYLE.get(b.status, "white")
    parts.append(f"[{style}]{b.status}[/{style}]")
    if b.job is not None and b.status in ("queued", "running", "failed", "stopped"):
        where = f" on {b.host}" if b.status == "running" and b.host else ""
        parts.append(f"job {b.job.backend}:{b.job.id}{where}")
    if b.error:
        parts.append(f"[red]{b.error}[/red]")
    if missing:
        parts.append("[red]directory missing[/red] (riverbed rm RUN BRANCH forgets it)")
    return " · ".join(parts)


def render(run: Run) -> Group:
    """A rich renderable: the tree of branches (with milestones and events) and the accounting."""

    branches = run.branches
    missing = set(run.missing_dirs())
    tree = Tree(f"[bold]run {run.path}[/bold] · {human(run.manifest.model.get('n_params'))} params")
    nodes: dict[str, Any] = {}
    pending = list(branches)
    # Parents before children: loop until every branch found its parent (or hangs at the root).
    while pending:
        progressed = False
        for b in list(pending):
            if b.parent is None or b.parent in nodes or b.parent not in {x.name for x in branches}:
                parent = nodes.get(b.parent, tree) if b.parent else tree
                node = parent.add(branch_line(b, missing=b.name in missing))
                for ms in b.milestones:
                    node.add(f"[magenta]decayed[/magenta] @ step {ms.step} · {human(ms.tokens)} tok · "
                             f"{human(ms.flops)} FLOPs · held-out {_loss(ms)}")
                for ev in b.events:
                    rest = {k: v for k, v in ev.items() if k not in ("time", "type", "event")}
                    node.add(f"[yellow]event[/yellow] {ev.get('type') or ev.get('event', '?')} {rest} [dim]{ev.get('time', '')}[/dim]")
                nodes[b.name] = node
                pending.remove(b)
                progressed = True
        if not progressed:  # a cycle in the lineage: show the rest at the root
            for b in pending:
                nodes[b.name] = tree.add(branch_line(b, missing=b.name in missing))
            break
    acc = accounting(run)
    table = Table(title="compute accounting (tokens; % of the largest budget)", show_header=True)
    for col in ("", "tokens", "FLOPs", "% of one run"):
        table.add_column(col, justify="right" if col else "left", overflow="fold")
    table.add_row("this run tree (all branches)", human(acc.tree_tokens), human(acc.tree_flops), f"{acc.tree_pct:.0f} %")
    if acc.needed_tokens is not None and acc.needed_tokens != acc.tree_tokens:
        table.add_row("  of which the finished models use", human(acc.needed_tokens), human(acc.needed_flops),
                      f"{acc.needed_pct:.0f} %")
    table.add_row(f"{acc.n_budgets} budgets as separate runs", human(acc.scratch_tokens), human(acc.scratch_flops),
                  f"{acc.scratch_pct:.0f} %")
    parts: list[Any] = [tree]
    if acc.n_budgets:
        parts.append(table)
        verb = "saves" if acc.saving >= 0 else "costs"
        parts.append(f"the tree {verb} {abs(100 * acc.saving):.0f} % of the tokens that separate from-scratch runs "
                     f"to the same {acc.n_budgets} budget(s) would spend")
    else:
        parts.append("no finished budgets yet (fork a decay branch: riverbed branch RUN --from STEP ...)")
    return Group(*parts)


def accounting(run: Run) -> Accounting:
    return run_accounting(run.branches, run.finished_points())


def as_json(run: Run) -> dict[str, Any]:
    return {
        "run": str(run.path),
        "manifest": run.manifest.to_dict(),
        "finished_points": [vars(p) for p in run.finished_points()],
        "accounting": accounting(run).to_dict(),
        "missing_directories": run.missing_dirs(),
    }
