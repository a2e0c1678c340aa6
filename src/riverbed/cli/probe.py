"""`riverbed probe VERB ...`: probes of the loss landscape around checkpoints (riverbed.landscape).

  interpolate A B     held-out loss on the line (1-a) A + a B, a in [0, 1] (and beyond with --extrapolate)
  sharpness CKPT      top Hessian eigenvalues (Lanczos, full reorthogonalisation) with residuals
  hill CKPT           loss drop of a short decay branch from CKPT (the hill component);
                      --along RUN: at every k-th main-branch checkpoint, hill and river plotted
  plane A B C         held-out loss over the plane through three checkpoints (contour plot)
  merge-taylor CKPT.. merge gain predicted from cross terms d_i^T H d_j vs the measured gain

Inputs are riverbed checkpoint directories (the run's config comes with them) or Hugging Face
model directories with --config CONFIG.toml (its [data] and [train] choose the held-out
batches). Each verb prints a table; --json prints the same as JSON. Checkpoints of different
models, incompatible tensors or a bad flag: one error line, exit 2. A sharpness run that does
not converge within --max-hvps says "did not converge" and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from riverbed.io.strict_json import finite
from riverbed.checkpoints.outputs import check_output
from riverbed.errors import ConfigError
from riverbed.io.progress import Progress, name_column
from riverbed.merging.weights import explicit
from riverbed.reports.landscape_plots import plot_hill, plot_interpolation, plot_plane
from riverbed.units import arg, parse_count


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe", help="loss-landscape probes: interpolate, sharpness, hill, plane, merge-taylor",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="probe", metavar="PROBE", parser_class=type(p))
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    def common(q: argparse.ArgumentParser, plot: bool = True) -> None:
        q.add_argument("--config", type=Path, default=None, help="riverbed config TOML ([data], [train]); needed for HF dirs")
        q.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
        q.add_argument("--json", action="store_true", help="print JSON instead of a table")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        if plot:
            q.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also write a plot here")

    q = sub.add_parser("interpolate", help="held-out loss along the line between two checkpoints")
    q.add_argument("a", type=Path)
    q.add_argument("b", type=Path)
    q.add_argument("--points", type=int, default=21, help="points in [0, 1], ends included (default 21)")
    q.add_argument("--extrapolate", type=float, default=0.0, help="also go this far beyond each end (default 0)")
    common(q)
    q.set_defaults(func=run_interpolate)

    q = sub.add_parser("sharpness", help="top Hessian eigenvalues of the held-out loss")
    q.add_argument("ckpt", type=Path)
    q.add_argument("--top", type=int, default=5, help="eigenvalues wanted (default 5)")
    q.add_argument("--max-hvps", type=int, default=200, help="budget of Hessian-vector products (default 200)")
    q.add_argument("--tol", type=float, default=1e-4, help="relative residual bound to stop at (default 1e-4)")
    q.add_argument("--seed", type=int, default=0, help="seed of the Lanczos start vector")
    common(q, plot=False)
    q.set_defaults(func=run_sharpness)

    q = sub.add_parser("hill", help="loss drop of a short decay branch (hill component), optionally along a run")
    q.add_argument("ckpt", type=Path, nargs="?", default=None)
    q.add_argument("--along", type=Path, default=None, metavar="RUN", help="probe every k-th main-branch checkpoint of RUN")
    q.add_argument("--every", type=arg(parse_count, positive=True), default=1, help="with --along: every k-th checkpoint (default 1)")
    q.add_argument("--length", type=arg(parse_count, positive=True), default=None, help="decay steps (default 10%% of the fork step, >= 10)")
    q.add_argument("--lr", type=float, default=None, help="LR the decay starts from (default: the run's LR at the fork)")
    q.add_argument("--shape", default="linear", help="decay shape (default linear)")
    common(q)
    q.set_defaults(func=run_hill)

    q = sub.add_parser("plane", help="held-out loss over the plane through three checkpoints")
    q.add_argument("a", type=Path)
    q.add_argument("b", type=Path)
    q.add_argument("c", type=Path)
    q.add_argument("--grid", type=int, default=21, help="grid points per side (default 21)")
    q.add_argument("--margin", type=float, default=0.25, help="box margin as a share of the points' span (default 0.25)")
    q.add_argument("--mark", type=Path, action="append", default=[], metavar="CKPT",
                   help="also project this checkpoint (e.g. a decayed one) onto the plane (repeatable)")
    common(q)
    q.set_defaults(func=run_plane)

    q = sub.add_parser("merge-taylor", help="second-order prediction of the merge gain vs the measured gain")
    q.add_argument("ckpts", type=Path, nargs="+")
    q.add_argument("--weights", default=None, metavar="W1,W2,...", help="merge weights (default uniform, normalised)")
    common(q, plot=False)
    q.set_defaults(func=run_merge_taylor)


# ---- shared ------------------------------------------------------------------------------------

def _print_json(obj: Any) -> None:
    # Non-finite floats (a diverged extrapolation) become null: the output stays strict JSON.
    print(json.dumps(finite(obj, mark=False), indent=2, allow_nan=False))


def _check_output(out: Path | None, inputs: list[Path]) -> None:
    if out is not None:
        check_output(out, flag="--plot", inputs=inputs, suffixes=(".png", ".pdf", ".svg"), error=ConfigError)


def _positive(name: str, value: float, minimum: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= minimum):
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")


def _table(title: str, columns: list[str], rows: list[list[str]], caption: str | None = None) -> None:
    t = Table(title=title, caption=caption)
    for i, c in enumerate(columns):
        if i == 0:
            name_column(t, c)
        else:
            t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*r)
    Console().print(t)


class _Bar:
    """A rich progress bar with ETA over ``total`` loss evaluations; a no-op when disabled."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self._p = Progress(enabled=enabled, transient=True)
        self.total, self.label = total, label

    def __enter__(self) -> _Bar:
        self._p.__enter__()
        self._task = self._p.add(self.label, self.total, unit="evaluations")
        return self

    def __call__(self) -> None:
        self._p.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        self._p.__exit__(None, None, None)


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


# ---- verbs -------------------------------------------------------------------------------------

def run_interpolate(args: argparse.Namespace) -> int:
    from riverbed.landscape import interpolate, open_checkpoints  # lazy: loads torch; every verb module is imported for `riverbed --help`
    from riverbed.landscape.probes import line_alphas  # lazy: loads torch; every verb module is imported for `riverbed --help`

    _positive("--points", args.points, 2)
    _positive("--extrapolate", args.extrapolate, 0)
    _check_output(args.plot, [args.a, args.b])
    setup, (a, b) = open_checkpoints([args.a, args.b], config=args.config, device=args.device)
    n = len(line_alphas(args.points, args.extrapolate))
    with _Bar(n, "interpolate", not args.no_progress and not args.json) as bar:
        r = interpolate(setup.objective, a, b, points=args.points, extrapolate=args.extrapolate, progress=bar)
    if args.plot is not None:
        plot_interpolation([(f"{args.a.name} -> {args.b.name}", r)], args.plot)
    out = {"a": str(args.a), "b": str(args.b), **r.to_json(), "plot": str(args.plot) if args.plot else None}
    if args.json:
        _print_json(out)
    else:
        _table(f"held-out loss from A={args.a} (alpha 0) to B={args.b} (alpha 1)", ["alpha", "loss"],
               [[f"{al:+.3f}", _fmt(lo)] for al, lo in zip(r.alphas, r.losses)],
               caption=f"minimum {_fmt(out['min_loss'])} at alpha {out['min_alpha']:+.3f}")
    return 0


def run_sharpness(args: argparse.Namespace) -> int:
    from riverbed.landscape import open_checkpoints, sharpness  # lazy: loads torch; every verb module is imported for `riverbed --help`

    _positive("--top", args.top, 1)
    _positive("--max-hvps", args.max_hvps, args.top + 1)
    if not 0 < args.tol < 1:
        raise ConfigError(f"--tol must be in (0, 1), got {args.tol!r}")
    setup, (p,) = open_checkpoints([args.ckpt], config=args.config, device=args.device)
    # The bar's total is the budget: a converging run finishes early.
    with _Bar(args.max_hvps, "sharpness (HVPs)", not args.no_progress and not args.json) as bar:
        s = sharpness(setup.objective, p, top=args.top, max_hvps=args.max_hvps, tol=args.tol, seed=args.seed, progress=bar)
    out = {"checkpoint": str(args.ckpt), "loss": setup.objective.loss(p), **s.to_json()}
    if args.json:
        _print_json(out)
    else:
        status = "converged" if s.converged else "DID NOT CONVERGE (Ritz values, not eigenvalues)"
        _table(f"top Hessian eigenvalues of the held-out loss at {args.ckpt}", ["#", "eigenvalue", "||Hv - lambda v||"],
               [[str(i + 1), f"{lam:.6g}", f"{res:.3g}"] for i, (lam, res) in enumerate(zip(s.eigenvalues, s.residuals))],
               caption=f"{status}: {s.hvps} Hessian-vector products, {s.iterations} Lanczos steps, {s.seconds:.2f} s")
    return 0 if s.converged else 1


def run_hill(args: argparse.Namespace) -> int:
    from riverbed.landscape import hill, hill_along  # lazy: loads torch; every verb module is imported for `riverbed --help`
    from riverbed.landscape.hill import points_json  # lazy: loads torch; every verb module is imported for `riverbed --help`

    if (args.ckpt is None) == (args.along is None):
        raise ConfigError("riverbed probe hill needs a checkpoint or --along RUN (one of them)")
    if args.config is not None:
        raise ConfigError("--config: hill trains from a riverbed checkpoint and uses its run's config")
    _check_output(args.plot, [args.ckpt or args.along])
    kw = dict(length=args.length, lr=args.lr, shape=args.shape, device=args.device, progress=not args.no_progress and not args.json)
    points = hill_along(args.along, every=args.every, **kw) if args.along is not None else [hill(args.ckpt, **kw)]
    if args.plot is not None:
        plot_hill(points, args.plot)
    if args.json:
        _print_json({"points": points_json(points), "plot": str(args.plot) if args.plot else None})
    else:
        _table("hill component: loss drop of a short decay branch", ["step", "tokens", "loss", "decayed (river)", "hill",
                                                                    "decay steps", "start LR"],
               [[str(p.step), str(p.tokens), _fmt(p.loss), _fmt(p.decayed_loss), _fmt(p.hill), str(p.decay_steps),
                 f"{p.start_lr:.3g}"] for p in points])
    return 0


def run_plane(args: argparse.Namespace) -> int:
    from riverbed.landscape import open_checkpoints, plane  # lazy: loads torch; every verb module is imported for `riverbed --help`

    _positive("--grid", args.grid, 2)
    _positive("--margin", args.margin, 0)
    inputs = [args.a, args.b, args.c, *args.mark]
    _check_output(args.plot, inputs)
    setup, params = open_checkpoints(inputs, config=args.config, device=args.device)
    marks = {f"mark{i + 1} {m.name}": p for i, (m, p) in enumerate(zip(args.mark, params[3:]))}
    with _Bar(args.grid ** 2, "plane", not args.no_progress and not args.json) as bar:
        try:
            r = plane(setup.objective, *params[:3], grid=args.grid, margin=args.margin, marks=marks, progress=bar)
        except ValueError as exc:
            raise ConfigError(f"plane {args.a} {args.b} {args.c}: {exc}") from None
    if args.plot is not None:
        plot_plane(r, args.plot)
    if args.json:
        _print_json({"checkpoints": [str(p) for p in inputs], **r.to_json(), "plot": str(args.plot) if args.plot else None})
    else:
        lo = min(min(row) for row in r.losses)
        _table("checkpoints on the plane through A, B, C", ["point", "x", "y", "off plane", "loss"],
               [[p.name, f"{p.x:.4g}", f"{p.y:.4g}", f"{p.off_plane:.3g}", _fmt(p.loss)] for p in r.points],
               caption=f"{args.grid}x{args.grid} grid; lowest grid loss {_fmt(lo)}" + (f"; plot {args.plot}" if args.plot else ""))
    return 0


def run_merge_taylor(args: argparse.Namespace) -> int:
    from riverbed.landscape import merge_taylor, open_checkpoints  # lazy: loads torch; every verb module is imported for `riverbed --help`

    if len(args.ckpts) < 2:
        raise ConfigError("merge-taylor needs at least 2 checkpoints")
    weights = None
    if args.weights is not None:
        try:
            raw = [float(x) for x in args.weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights {args.weights!r}: not comma-separated numbers") from None
        if len(raw) != len(args.ckpts):
            raise ConfigError(f"--weights has {len(raw)} numbers for {len(args.ckpts)} checkpoints")
        weights = explicit(raw)
    setup, params = open_checkpoints(args.ckpts, config=args.config, device=args.device)
    r = merge_taylor(setup.objective, params, weights)
    out = {"checkpoints": [str(p) for p in args.ckpts], **r.to_json()}
    if args.json:
        _print_json(out)
        return 0
    k = len(params)
    _table("cross terms C_ij = d_i^T H d_j  (d_i = checkpoint i - merge, H at the merge)",
           ["", *[f"d{j + 1}" for j in range(k)]],
           [[f"d{i + 1} {args.ckpts[i].name}", *[f"{r.cross[i][j]:.4g}" for j in range(k)]] for i in range(k)])
    _table("merge gain (negative = the merge is better)", ["", "predicted (2nd order)", "measured"],
           [["merge - weighted mean of checkpoints", f"{r.predicted_gain:.5g}", f"{r.measured_gain:.5g}"],
            ["merge - last checkpoint", f"{r.predicted_vs_last:.5g}", f"{r.measured_vs_last:.5g}"]],
           caption=f"merge loss {_fmt(r.merged_loss)}; weights {', '.join(f'{w:.3g}' for w in r.weights)}; {r.hvps} HVPs")
    return 0
