"""Observed (N, D, loss) points: validation and the CSV source.

A point is one finished model: N parameters trained on D tokens reaching a final held-out
loss. Every point carries a label (``file.csv:row 7`` or ``run/branch``) so an error can
name the offending rows or runs.

>>> pts = Points.from_arrays(n=[1e8, 1e8, 4e8], d=[1e9, 4e9, 4e9], loss=[3.1, 2.9, 2.7])
>>> len(pts), pts.labels[2]
(3, 'point 2')
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from riverbed.io.input_files import read_text
from riverbed.errors import ScalingError

#: Consecutive distinct N (or D) values more than this factor apart look like two units
#: mixed in one column (e.g. millions and raw counts); real scaling studies space sizes far
#: closer (Chinchilla's 245 points never skip more than a factor 2 in N).
UNIT_GAP = 1e3


@dataclass(frozen=True)
class Points:
    """Finished-model observations; arrays of equal length, one label per point."""

    n: np.ndarray
    """Parameters per point (float64)."""
    d: np.ndarray
    """Training tokens per point (float64)."""
    loss: np.ndarray
    """Final held-out loss per point (nats per token)."""
    labels: tuple[str, ...]
    """Where each point came from: ``file.csv:row 7`` (1-based data row) or ``run/branch``."""
    kinds: tuple[str, ...] = ()
    """Per point: ``decay`` / ``wsds`` / ``cosine`` / ``merge`` for run-tree points, ``csv`` otherwise."""
    units: tuple[str | None, ...] = ()
    """Per point: the token unit (tokenizer) when known; points with different units cannot be mixed."""
    meta: tuple[dict, ...] = field(default=(), compare=False)
    """Per point: extra facts (FLOPs, fork step, ...), carried into plots and reports."""

    @classmethod
    def from_arrays(cls, n: Sequence[float], d: Sequence[float], loss: Sequence[float], labels: Sequence[str] | None = None, kinds: Sequence[str] | None = None) -> Points:
        n_arr = np.asarray(n, dtype=np.float64).reshape(-1)
        d_arr = np.asarray(d, dtype=np.float64).reshape(-1)
        l_arr = np.asarray(loss, dtype=np.float64).reshape(-1)
        if not (len(n_arr) == len(d_arr) == len(l_arr)):
            raise ScalingError(f"N, D and loss differ in length: {len(n_arr)}, {len(d_arr)}, {len(l_arr)}")
        labels = tuple(labels) if labels is not None else tuple(f"point {i}" for i in range(len(n_arr)))
        kinds = tuple(kinds) if kinds is not None else ("csv",) * len(n_arr)
        return cls(n_arr, d_arr, l_arr, labels, kinds, (None,) * len(n_arr), ({},) * len(n_arr))

    def __len__(self) -> int:
        return len(self.loss)

    def __post_init__(self) -> None:
        k = len(self.loss)
        if not self.kinds:
            object.__setattr__(self, "kinds", ("csv",) * k)
        if not self.units:
            object.__setattr__(self, "units", (None,) * k)
        if not self.meta:
            object.__setattr__(self, "meta", tuple({} for _ in range(k)))

    def take(self, idx: Sequence[int] | np.ndarray) -> Points:
        idx = [int(i) for i in idx]
        return Points(self.n[idx], self.d[idx], self.loss[idx], tuple(self.labels[i] for i in idx), tuple(self.kinds[i] for i in idx), tuple(self.units[i] for i in idx), tuple(self.meta[i] for i in idx))

    def to_json(self) -> dict:
        return {"N": self.n.tolist(), "D": self.d.tolist(), "loss": self.loss.tolist(), "labels": list(self.labels), "kinds": list(self.kinds), "units": list(self.units)}

    @classmethod
    def from_json(cls, obj: dict) -> Points:
        k = len(obj["loss"])
        return cls(np.asarray(obj["N"], dtype=np.float64), np.asarray(obj["D"], dtype=np.float64), np.asarray(obj["loss"], dtype=np.float64), tuple(obj["labels"]), tuple(obj.get("kinds") or ("csv",) * k), tuple(obj.get("units") or (None,) * k))


def concat(parts: Sequence[Points]) -> Points:
    """Join point sets from several sources (labels keep their origin)."""
    if not parts:
        raise ScalingError("no sources given")
    return Points(
        np.concatenate([p.n for p in parts]),
        np.concatenate([p.d for p in parts]),
        np.concatenate([p.loss for p in parts]),
        tuple(x for p in parts for x in p.labels),
        tuple(x for p in parts for x in p.kinds),
        tuple(x for p in parts for x in p.units),
        tuple(x for p in parts for x in p.meta),
    )


def _rows(labels: Sequence[str], mask: np.ndarray, limit: int = 8) -> str:
    bad = [labels[i] for i in np.flatnonzero(mask)]
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return ", ".join(bad[:limit]) + more


def validate(points: Points, *, n_params: int, need_n: bool = True) -> None:
    """Raise :class:`ScalingError` naming the rows that make ``points`` unusable for a fit.

    Checks: NaN/inf, non-positive N, D or loss, fewer *distinct* (N, D) points than the law's
    parameters (repeated rows add no information about the law's shape), and
    mixed units (different token units, or a gap of more than ``UNIT_GAP`` between
    consecutive distinct N or D values).
    """
    cols = {"D": points.d, "loss": points.loss}
    if need_n:
        cols = {"N": points.n, **cols}
    for name, col in cols.items():
        nan = ~np.isfinite(col)
        if nan.any():
            raise ScalingError(f"{name} is NaN or infinite at {_rows(points.labels, nan)}")
        bad = col <= 0
        if bad.any():
            raise ScalingError(f"{name} must be positive; got {col[bad][0]:g} at {_rows(points.labels, bad)}")
    distinct = distinct_points(points, need_n=need_n)
    if distinct < n_params:
        repeats = f" ({len(points)} rows, {len(points) - distinct} repeating an earlier (N, D))" if distinct < len(points) else ""
        single = need_n and len(np.unique(points.n)) == 1
        hint = f"; with one model size (N={points.n[0]:.4g}) fit --law data" if single and n_params > 3 else ""
        raise ScalingError(f"{distinct} distinct points{repeats} cannot determine {n_params} parameters; need at least {n_params}{hint}")
    units = sorted({u for u in points.units if u is not None})
    if len(units) > 1:
        by_unit = {u: [lab for lab, v in zip(points.labels, points.units) if v == u] for u in units}
        detail = "; ".join(f"{u}: {', '.join(labs[:4])}{' ...' if len(labs) > 4 else ''}" for u, labs in by_unit.items())
        raise ScalingError(f"mixed units: points measured with different tokenizers ({detail})")
    for name, col in cols.items():
        if name == "loss":
            continue
        vals = np.unique(col)
        if len(vals) > 1:
            ratio = vals[1:] / vals[:-1]
            j = int(np.argmax(ratio))
            if ratio[j] > UNIT_GAP:
                small = col <= vals[j]
                raise ScalingError(
                    f"mixed units? {name} jumps from {vals[j]:g} to {vals[j + 1]:g} (x{ratio[j]:.3g}); "
                    f"the smaller values are at {_rows(points.labels, small)} (are some in millions or billions?)"
                )


def distinct_points(points: Points, *, need_n: bool = True) -> int:
    """Distinct design points: (N, D) pairs (only D when the law has no N term)."""
    cols = (points.n, points.d) if need_n else (points.d,)
    return len({tuple(row) for row in np.column_stack(cols).tolist()})


def data_range(points: Points) -> dict[str, tuple[float, float]]:
    """Smallest and largest N, D and C = 6ND over the fitted points."""
    c = 6.0 * points.n * points.d
    return {k: (float(v.min()), float(v.max())) for k, v in (("N", points.n), ("D", points.d), ("C", c))}


def design_warnings(points: Points, *, n_params: int, need_n: bool = True) -> list[str]:
    """What the design cannot tell: too few degrees of freedom, or too few distinct N or D.

    An additive law E + A/N^alpha + B/D^beta needs three distinct N to separate A and alpha from E
    (one size makes A/N^alpha a constant; two give two offsets for three unknowns), and likewise
    three distinct D for B and beta.
    """
    notes = []
    distinct = distinct_points(points, need_n=need_n)
    dof = distinct - n_params
    if dof == 0:
        notes.append(f"zero degrees of freedom: {distinct} distinct points for {n_params} parameters; the law passes through every point and its intervals mean nothing")
    elif 0 < dof < n_params:
        notes.append(f"few degrees of freedom: {distinct} distinct points for {n_params} parameters ({dof} to spare); treat the parameters and intervals with caution")
    if need_n:
        for name, col, params in (("N", points.n, "A and alpha"), ("D", points.d, "B and beta")):
            vals = np.unique(col)
            if len(vals) < 3:
                shown = ", ".join(f"{v:.4g}" for v in vals)
                extra = " (fit --law data for one model size)" if name == "N" and len(vals) == 1 else ""
                notes.append(f"the design cannot identify {params}: only {len(vals)} distinct {name} ({shown}); at least 3 are needed to separate them from E{extra}")
    return notes


def drop_highest(points: Points, k: int) -> tuple[Points, tuple[str, ...]]:
    """Remove the ``k`` highest-loss points (Epoch AI dropped 5); returns the rest and the dropped labels."""
    if k < 0:
        raise ScalingError(f"--drop-highest must be >= 0, got {k}")
    if k == 0:
        return points, ()
    if k >= len(points):
        raise ScalingError(f"--drop-highest {k} would drop all {len(points)} points")
    order = np.argsort(points.loss, kind="stable")
    keep = np.sort(order[: len(points) - k])
    dropped = tuple(points.labels[i] for i in order[len(points) - k :][::-1])  # highest first
    return points.take(keep), dropped


#: Accepted header names per column role, compared after ``_norm`` (case, spaces, ``-``/``_``):
#: riverbed's own N/D/C/loss first, then what W&B exports and common papers' tables use.
ALIASES: dict[str, tuple[str, ...]] = {
    "n": ("n", "params", "n_params", "num_params", "nparams", "parameters", "model_size", "non_embedding_params"),
    "d": ("d", "tokens", "n_tokens", "num_tokens", "train_tokens", "training_tokens", "tokens_seen", "data_size"),
    "c": ("c", "flops", "compute", "train_flops", "training_flops"),
    "loss": ("loss", "eval/loss", "eval_loss", "val_loss", "val/loss", "validation_loss", "valid/loss", "test_loss", "final_loss"),
}
#: The CLI flag that names each role's column explicitly.
COLUMN_FLAGS = {"n": "--n-col", "d": "--d-col", "c": "--c-col", "loss": "--loss-col"}


@dataclass(frozen=True)
class Columns:
    """Header names chosen explicitly for N, D, C (training FLOPs) and loss; None = find by alias."""

    n: str | None = None
    d: str | None = None
    c: str | None = None
    loss: str | None = None

    def given(self) -> dict[str, str]:
        return {k: v for k, v in (("n", self.n), ("d", self.d), ("c", self.c), ("loss", self.loss)) if v is not None}


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().replace("-", "_").split()).replace(" ", "_")


def resolve_columns(header: Sequence[str], columns: Columns, source: str) -> dict[str, int]:
    """Column index per role (``n``, ``d``, ``c``, ``loss``, ``unit``) from explicit names or aliases.

    >>> resolve_columns(["model_size", "tokens", "flops", "eval/loss"], Columns(), "w.csv")
    {'n': 0, 'd': 1, 'c': 2, 'loss': 3}
    """
    normed = [_norm(h) for h in header]
    found: dict[str, int] = {}
    for role, name in columns.given().items():
        if _norm(name) not in normed:
            raise ScalingError(f"{source}: {COLUMN_FLAGS[role]} {name!r} is not a column; header is {list(header)}")
        found[role] = normed.index(_norm(name))
    for role, names in ALIASES.items():
        if role in found:
            continue
        hits = [i for i, h in enumerate(normed) if h in names and i not in found.values()]
        if len(hits) > 1:
            cols = ", ".join(repr(header[i]) for i in hits)
            raise ScalingError(f"{source}: columns {cols} could each be {role if role == 'loss' else role.upper()}; choose one with {COLUMN_FLAGS[role]}")
        if hits:
            found[role] = hits[0]
    missing = [m for m, ok in (("N", "n" in found), ("D (or C)", "d" in found or "c" in found), ("loss", "loss" in found)) if not ok]
    if missing:
        hint = "; ".join(f"{r.upper() if r != 'loss' else r}: {', '.join(ALIASES[r])}" for r in ALIASES)
        raise ScalingError(
            f"{source}: missing column(s) {', '.join(missing)}; header is {list(header)}. "
            f"Accepted names ({hint}), or name them with --n-col/--d-col/--c-col/--loss-col"
        )
    if "unit" in normed:
        found["unit"] = normed.index("unit")
    return found


def _delimiter(path: Path, first_line: str) -> str:
    # TSV by extension, or a header with tabs and no commas (a spreadsheet's tab export).
    if path.suffix.lower() in (".tsv", ".tab") or ("\t" in first_line and "," not in first_line):
        return "\t"
    return ","


def load_csv(path: str | Path, columns: Columns | None = None) -> Points:
    """Read a CSV or TSV with columns N, D (or C = training FLOPs, D = C / (6 N)) and loss.

    Headers are matched case-insensitively against ``ALIASES`` (``params``, ``tokens``,
    ``flops``, ``eval/loss``, ...) unless ``columns`` names them; an optional ``unit`` column
    names the token unit per row. Rows are labelled ``<file>:row <k>`` (1-based data row).
    """
    path = Path(path)
    text = read_text(path, "CSV file", ScalingError, encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ScalingError(f"{path} is empty")
    reader = csv.reader(lines, delimiter=_delimiter(path, lines[0]))
    header = [h.strip() for h in next(reader)]
    idx = resolve_columns(header, columns or Columns(), str(path))
    n, d, loss, labels, units, bad = [], [], [], [], [], []
    for k, row in enumerate(reader, start=1):
        label = f"{path.name}:row {k}"

        def cell(role: str, row=row) -> float:
            i = idx.get(role)
            if i is None or i >= len(row) or not row[i].strip():
                return math.nan
            return float(row[i])

        try:
            nv, lv = cell("n"), cell("loss")
            dv = cell("d")
            if math.isnan(dv) and "c" in idx:
                dv = cell("c") / (6.0 * nv)
        except ValueError:
            bad.append(label)
            continue
        n.append(nv)
        d.append(dv)
        loss.append(lv)
        labels.append(label)
        ui = idx.get("unit")
        units.append(row[ui].strip() if ui is not None and ui < len(row) and row[ui].strip() else None)
    if bad:
        raise ScalingError(f"{path}: non-numeric values at {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}")
    if not loss:
        raise ScalingError(f"{path} has a header but no data rows")
    k = len(loss)
    return Points(np.array(n), np.array(d), np.array(loss), tuple(labels), ("csv",) * k, tuple(units), tuple({} for _ in range(k)))


def run_unit(manifest: Any) -> str | None:
    """Token unit of a run: its tokenizer and vocabulary (losses and token counts depend on both)."""
    cfg = getattr(manifest, "config", None) or {}
    data, model = cfg.get("data") or {}, cfg.get("model") or {}
    tok = data.get("tokenizer")
    if tok is None:
        return None
    return f"tokenizer={tok}, vocab={model.get('vocab_size')}"
