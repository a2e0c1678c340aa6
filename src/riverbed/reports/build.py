"""`riverbed report`: one self-contained HTML page per run (or per comparison), PNGs beside it.

The report is built in memory first (every figure rendered to PNG bytes), then written: the
PNGs ``<stem>-<figure>.png`` beside the HTML, each atomically, the HTML last. A bad request (no
run there, an output inside a run's branches, a missing ``.html`` suffix) is refused before
anything is written.

>>> from riverbed.reports import build_report, build_compare       # doctest: +SKIP
>>> build_report("runs/tiny").html                                 # doctest: +SKIP
PosixPath('runs/tiny/report.html')
>>> build_compare(["runs/wsd", "runs/wsds", "runs/cos"], "cmp.html")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.checkpoints.outputs import check_beside, check_output
from riverbed.io.atomic import atomic_path, write_text
from riverbed.errors import ReportError
from riverbed.reports import figures
from riverbed.reports.collect import RunData, collect_run, software_versions
from riverbed.reports.decays import decay_rows, explain_drop
from riverbed.reports.html import Page, check_page_out, is_report_page
from riverbed.reports.predictor import PredictorSection, predictor_section
from riverbed.runs.run import Run
from riverbed.runs.view import human

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class Report:
    """What was written: the HTML page and the PNG files beside it."""

    html: Path
    images: tuple[Path, ...]


def _check_out(out: Path) -> None:
    check_page_out(out, "--out")
    check_output(out, flag="--out", error=ReportError)


def _f(x: float | None, fmt: str = ".4f") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _branch_rows(data: RunData) -> list[list[Any]]:
    rows = []
    for b in data.branches:
        last = b.final or b.progress
        rows.append([b.name, b.kind, b.parent or "-", "-" if b.fork is None else b.fork.step,
                     "-" if last is None else last.step, human(last.tokens if last else None),
                     human(last.flops if last else None), _f(last.eval_loss if last else None), b.status])
    return rows


def _accounting_rows(data: RunData) -> list[list[Any]]:
    a = data.accounting
    rows = [["this run tree (all branches)", human(a.tree_tokens), human(a.tree_flops), f"{_f(a.tree_pct, '.0f')} %"]]
    if a.needed_tokens is not None and a.needed_tokens != a.tree_tokens:
        rows.append(["of which the finished models use", human(a.needed_tokens), human(a.needed_flops),
                     f"{_f(a.needed_pct, '.0f')} %"])
    rows.append([f"{a.n_budgets} budgets as separate from-scratch runs", human(a.scratch_tokens), human(a.scratch_flops),
                 f"{_f(a.scratch_pct, '.0f')} %"])
    return rows


def _fit_rows(fit: Any) -> list[list[Any]]:
    iv = fit.intervals()
    return [[k, f"{v:.4g}", "-" if k not in iv else f"[{iv[k][0]:.4g}, {iv[k][1]:.4g}]"] for k, v in fit.params.items()]


class _Images:
    """Figures rendered to PNG, named for the files written beside the HTML."""

    def __init__(self, page: Page, stem: str) -> None:
        self.page, self.stem, self.files = page, stem, {}

    def add(self, name: str, fig: Any, alt: str, caption: str = "") -> None:
        png = figures.png_bytes(fig)
        self.files[f"{self.stem}-{name}.png"] = png
        self.page.add_image(png, alt, caption)


def _run_sections(page: Page, images: _Images, data: RunData) -> None:
    page.add_heading("Learning-rate schedules")
    if not any(c.lr or c.loss for c in data.curves):
        page.add_note("No metrics yet: no branch of this run has logged a training step (riverbed train ...).")
    images.add("lr", figures.lr_figure(data), "learning rate against tokens, every branch",
               "Every branch's LR; a decay branch starts at its fork point on its parent.")
    page.add_heading("Held-out loss")
    images.add("loss", figures.loss_figure(data), "held-out loss against tokens",
               "Main branch black; decay branches coloured from their fork; PMA merges dashed orange; "
               "WSD-S / cyclic decayed checkpoints as red stars. (zoomed): the axis shows the lowest 90 % "
               "of evaluations, so the first random-init losses sit above it.")
    page.add_table("branches", ["branch", "kind", "parent", "fork step", "last step", "tokens", "FLOPs",
                                "held-out loss", "status"], _branch_rows(data))
    if data.points:
        page.add_table("finished models (one per budget)", ["branch", "kind", "tokens", "FLOPs", "held-out loss"],
                       [[p.branch, p.kind, human(p.tokens), human(p.flops), _f(p.loss)] for p in data.points])
    _decay_section(page, data)
    # Sections with nothing to show are left out (a note says how to get them where that helps).
    if data.accounting.n_budgets:
        page.add_heading("Compute accounting")
        page.add_table("tokens and FLOPs; % of the largest budget (one full run)", ["", "tokens", "FLOPs", "% of one run"],
                       _accounting_rows(data))
        a = data.accounting
        page.add_note(f"The tree {'saves' if a.saving >= 0 else 'costs'} {abs(100 * a.saving):.0f} % of the tokens that "
                      f"separate from-scratch runs to the same {a.n_budgets} budget(s) would spend.")
    else:
        page.add_note("No finished budgets yet: fork a decay branch (riverbed branch RUN --from STEP ...).")
    if data.events:
        page.add_heading("Spike-guard events")
        page.add_table("events recorded by the branches", ["branch", "step", "event", "details"],
                       [[e.branch, "-" if e.step is None else e.step, e.kind,
                         ", ".join(f"{k}={v}" for k, v in e.details.items())] for e in data.events])
    if not data.points:
        return
    page.add_heading("Scaling fit")
    page.add_note(data.fit_note)
    if data.fit is not None:
        for w in data.fit.warnings:
            page.add_note(f"Note: {w}.")
        images.add("fit", figures.fit_figure(data.fit), "scaling-law fit of the finished points",
                   "Log-log axes. Solid: the fit over the observed token range (shaded); dashed: extrapolated.")
        page.add_table(f"parameters ({data.fit.ci:.0%} bootstrap intervals)", ["parameter", "value", "interval"],
                       _fit_rows(data.fit))


def _decay_section(page: Page, data: RunData) -> None:
    rows = decay_rows(Run.open(data.path))
    if not rows:
        return
    main = next((b for b in data.branches if b.name == layout.MAIN), None)
    last = (main.final or main.progress).step if main is not None and (main.final or main.progress) is not None else None
    page.add_heading("Decay branches against the main branch")
    page.add_table("each decay branch beside the undecayed main branch at the same tokens; drop = main @ budget - branch "
                   "(positive: the decay helped)",
                   ["branch", "fork step", "budget step", "tokens", "main @ fork", "main @ budget", "decay branch", "drop"],
                   [[r.branch, r.fork, r.budget, human(r.tokens), _f(r.main_at_fork),
                     _f(r.main_at_budget) + (" (interpolated)" if r.interpolated else ""), _f(r.loss),
                     "-" if r.drop is None else f"{r.drop:+.4f}" + (" (hurt)" if r.drop < 0 else "")] for r in rows])
    for r in rows:
        why = explain_drop(r.drop, r.main_at_fork, r.main_at_budget, fork=r.fork, budget=r.budget, main_last=last)
        if why:
            page.add_note(f"{r.branch}: {why}.")


def _predictor_section(page: Page, sec: PredictorSection) -> None:
    page.add_heading("Trajectory predictor")
    page.add_note(f"{sec.law} law (riverbed predict fit RUN --law {sec.law}): {sec.note}")
    fit = sec.fit
    if fit is not None and fit.diagnostics is not None:
        page.add_table("fitted parameters (LR units of the peak LR; 95 % linearised intervals)",
                       ["parameter", "value", "95 % interval", "note"],
                       [[c.name, f"{c.value:.4g}", "unbounded" if c.lo is None else f"[{c.lo:.4g}, {c.hi:.4g}]",
                         ", ".join(([f"at {c.bound} bound"] if c.bound else []) + ([] if c.pinned else ["not pinned down"]))]
                        for c in fit.diagnostics.params])
        for reason in fit.diagnostics.reasons:
            page.add_note(f"Unreliable: {reason}.")
        for note in fit.diagnostics.notes:
            page.add_note(f"Note: {note}.")
    if sec.rows:
        page.add_table("each finished decay branch predicted by a fit on the main branch and the other decay branches "
                       "(leave-one-out), against the trained loss; 95 % linearised intervals of a measured loss (law + eval noise)",
                       ["branch", "trained", "predicted", "95 % interval", "error"],
                       [[r.branch, _f(r.trained), "refused" if r.predicted is None else _f(r.predicted),
                         "-" if r.lo is None else f"[{r.lo:.4f}, {r.hi:.4f}]",
                         "-" if r.predicted is None else f"{100 * (r.predicted - r.trained) / r.trained:+.2f} %"] for r in sec.rows])
        for r in sec.rows:
            if r.predicted is None and r.note:
                page.add_note(f"{r.branch}: {r.note}")
    if sec.verdict:
        page.add_note(f"Leave-one-out (riverbed predict check RUN --law {sec.law} --no-merge): {sec.verdict}")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists stay values).

    >>> flatten({"train": {"lr": 1, "betas": [0.9, 0.95]}, "seed": 0})
    {'train.lr': 1, 'train.betas': [0.9, 0.95], 'seed': 0}
    """
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _tail(page: Page, runs: Sequence[RunData]) -> None:
    page.add_heading("Config")
    if len(runs) == 1:
        d = runs[0]
        sched = flatten(d.config.get("schedule") or {}, "schedule")
        page.add_table("schedule", ["key", "value"], [[k, v] for k, v in sched.items()])
    else:
        flat = [flatten(d.config) for d in runs]
        keys = sorted({k for f in flat for k in f})
        differ = [k for k in keys if len({repr(f.get(k, "-")) for f in flat}) > 1]
        page.add_table("keys that differ between the runs", ["key", *(d.label for d in runs)],
                       [[k, *(f.get(k, "-") for f in flat)] for k in differ])
    for data in runs:
        page.add_pre({"config": data.config, "model": data.model}, summary=f"full config of {data.label} ({data.path})")
    page.add_heading("Software")
    for data in runs:
        trained = data.software
        if trained:
            page.add_table(f"versions of the software that created {data.label} (run.json software)", ["package", "version"],
                           [[k, v] for k, v in trained.items()])
        else:
            page.add_note(f"{data.label}: its run.json records no software versions (written before runs recorded them).")
    page.add_table("versions of the software that wrote this report", ["package", "version"],
                   [[k, v] for k, v in software_versions().items()])


def _write(out: Path, page: Page, images: _Images) -> Report:
    beside = [out.parent / name for name in images.files]
    ours = is_report_page(out)  # the PNGs beside riverbed's own page are that report's figures
    check_beside(beside, flag="--out", owned=lambda p: ours or figures.is_report_png(p), error=ReportError)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for path, png in zip(beside, images.files.values()):
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        written.append(path)
    write_text(out, page.render())
    return Report(out, tuple(written))


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def build_report(run: str | Path, out: str | Path | None = None, *, fit: bool = True, predictor: bool = True) -> Report:
    """Write the report of one run: ``out`` (default ``RUN/report.html``) and its PNGs beside it.

    ``fit``: the scaling fit of the finished points; ``predictor``: the loss-law section (a few seconds)."""
    run = Path(run)
    out = Path(out) if out is not None else run / REPORT_NAME
    _check_out(out)
    data = collect_run(run, fit=fit)
    n = data.model.get("n_params")
    page = Page(f"riverbed run {data.label}",
                f"{data.path} · {human(n)} parameters · {len(data.branches)} branch(es) · written {_stamp()}")
    images = _Images(page, out.stem)
    _run_sections(page, images, data)
    if predictor and any(b.kind == "decay" for b in data.branches):
        _predictor_section(page, predictor_section(data.path))
    _tail(page, [data])
    return _write(out, page, images)


def _labels(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def build_compare(runs: Sequence[str | Path], out: str | Path) -> Report:
    """Overlay several runs (e.g. WSD vs WSD-S vs cosine) on tokens and on FLOPs in one page."""
    paths = [Path(r) for r in runs]
    if len(paths) < 2:
        raise ReportError(f"--compare needs at least two runs, got {len(paths)}")
    if len({p.resolve() for p in paths}) < len(paths):
        raise ReportError("--compare: a run is named twice")
    out = Path(out)
    _check_out(out)
    datas = [collect_run(p, label=lab, fit=False) for p, lab in zip(paths, _labels(paths))]
    page = Page("riverbed comparison: " + " vs ".join(d.label for d in datas), f"written {_stamp()}")
    images = _Images(page, out.stem)
    page.add_heading("Held-out loss at equal tokens")
    images.add("loss-tokens", figures.compare_figure(datas, x="tokens"), "held-out loss against tokens, all runs",
               "One colour per run: its long branch thick, its decay branches thin, PMA merges dashed, decayed "
               "checkpoints as stars.")
    page.add_heading("Held-out loss at equal compute")
    images.add("loss-flops", figures.compare_figure(datas, x="flops"), "held-out loss against training FLOPs, all runs",
               "FLOPs are cumulative along a lineage: a decay branch's point is what a from-scratch run to it costs.")
    page.add_heading("Learning-rate schedules")
    images.add("lr", figures.compare_figure(datas, x="tokens", series="lr"), "learning rate against tokens, all runs")
    page.add_heading("Finished models")
    page.add_table("one row per finished model", ["run", "branch", "kind", "tokens", "FLOPs", "held-out loss"],
                   [[d.label, p.branch, p.kind, human(p.tokens), human(p.flops), _f(p.loss)] for d in datas for p in d.points])
    page.add_heading("Compute accounting")
    page.add_table("per run: tokens the tree spent vs the same budgets from scratch",
                   ["run", "tree tokens", "tree FLOPs", "budgets", "from-scratch tokens", "saving"],
                   [[d.label, human(d.accounting.tree_tokens), human(d.accounting.tree_flops), d.accounting.n_budgets,
                     human(d.accounting.scratch_tokens),
                     f"{100 * d.accounting.saving:.0f} %" if d.accounting.n_budgets else "-"] for d in datas])
    _tail(page, datas)
    return _write(out, page, images)
