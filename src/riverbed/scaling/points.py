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

import numpy as np

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

    Checks: NaN/inf, non-positive N, D or loss, fewer points than the law's parameters, and
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
    if len(points) < n_params:
        raise ScalingError(f"{len(points)} points cannot determine {n_params} parameters; need at least {n_params}")
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


def load_csv(path: str | Path) -> Points:
    """Read a CSV with columns N, D (or C = training FLOPs, D = C / (6 N)) and loss.

    Headers are case-insensitive; an optional ``unit`` column names the token unit per row.
    Rows are labelled ``<file>:row <k>`` with k the 1-based data row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ScalingError(f"cannot read {path}: {exc.strerror or exc}") from None
    reader = csv.reader(line for line in text.splitlines() if line.strip())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ScalingError(f"{path} is empty") from None
    lower = {h.lower(): i for i, h in enumerate(header)}
    missing = [c for c in ("n", "loss") if c not in lower]
    if "d" not in lower and "c" not in lower:
        missing.append("D (or C)")
    if missing:
        raise ScalingError(f"{path}: missing column(s) {', '.join(m.upper() if len(m) == 1 else m for m in missing)}; header is {header}")
    n, d, loss, labels, units, bad = [], [], [], [], [], []
    for k, row in enumerate(reader, start=1):
        label = f"{path.name}:row {k}"

        def cell(name: str, row=row) -> float:
            i = lower.get(name)
            if i is None or i >= len(row) or not row[i].strip():
                return math.nan
            return float(row[i])

        try:
            nv, lv = cell("n"), cell("loss")
            dv = cell("d")
            if math.isnan(dv) and "c" in lower:
                dv = cell("c") / (6.0 * nv)
        except ValueError:
            bad.append(label)
            continue
        n.append(nv)
        d.append(dv)
        loss.append(lv)
        labels.append(label)
        ui = lower.get("unit")
        units.append(row[ui].strip() if ui is not None and ui < len(row) and row[ui].strip() else None)
    if bad:
        raise ScalingError(f"{path}: non-numeric values at {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}")
    if not loss:
        raise ScalingError(f"{path} has a header but no data rows")
    k = len(loss)
    return Points(np.array(n), np.array(d), np.array(loss), tuple(labels), ("csv",) * k, tuple(units), tuple({} for _ in range(k)))
