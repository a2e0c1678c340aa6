"""Where points come from: CSV files and riverbed run directories.

A run directory contributes its finished models (``Run.finished_points()``): ends of decay
branches, WSD-S decayed checkpoints, ends of cosine runs; N = the model's parameters,
D = tokens seen along the lineage, loss = final held-out loss. ``points="merge"`` replaces
them with decay-free points (PMA merges of main-branch checkpoints, see ``merge_points``).

>>> pts = load_points(["runs/s1", "runs/s2"])          # doctest: +SKIP
>>> pts = load_points(["epoch.csv"])                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from riverbed.errors import RiverbedError, ScalingError
from riverbed.runs import Run
from riverbed.scaling.merge_points import merge_points
from riverbed.scaling.points import COLUMN_FLAGS, Columns, Points, concat, load_csv, run_unit

#: Finished-model kinds a run contributes by default ("merge" points are asked for explicitly).
FINISHED_KINDS = ("decay", "wsds", "cosine", "cyclic", "main")
POINT_SOURCES = ("finished", "merge")


def load_run(path: str | Path, kinds: Sequence[str] = FINISHED_KINDS) -> Points:
    """The finished points of one run directory; ScalingError if it has none."""
    try:
        run = Run(path)
        finished = run.finished_points()
        unit = run_unit(run.manifest)
    except RiverbedError as exc:
        raise ScalingError(f"run {path}: {exc}") from exc
    adopted = run.manifest.config.get("adopted")
    if isinstance(adopted, dict) and adopted.get("tokens") is None and finished:
        raise ScalingError(f"run {path} was adopted without token counts, so D (tokens) is unknown; adopt it again "
                           "with --tokens-per-step N (or from a log with num_input_tokens_seen)")
    kept = [p for p in finished if p.kind in kinds]
    if not kept:
        seen = sorted({p.kind for p in finished})
        extra = f" (it has only: {', '.join(seen)})" if seen else ""
        raise ScalingError(f"run {path} has no finished branches of kind {', '.join(kinds)}{extra}; fork decay branches first (`riverbed branch`)")
    name = Path(path).name
    return Points(
        np.array([float(p.n_params) for p in kept]),
        np.array([float(p.tokens) for p in kept]),
        np.array([float(p.loss) for p in kept]),
        tuple(f"{name}/{p.branch}" + (f"@{p.tokens}" if p.kind in ("wsds", "cyclic") else "") for p in kept),
        tuple(p.kind for p in kept),
        (unit,) * len(kept),
        tuple({"flops": float(p.flops), "run": str(p.run), "branch": p.branch} for p in kept),
    )


def load_source(source: str | Path, *, points: str = "finished", kinds: Sequence[str] = FINISHED_KINDS, columns: Columns | None = None, **merge_options) -> Points:
    """One CSV/TSV file (``columns`` names its N/D/C/loss headers) or run directory."""
    path = Path(source)
    if points not in POINT_SOURCES:
        raise ScalingError(f"--points must be one of {', '.join(POINT_SOURCES)}, got {points!r}")
    if path.is_dir():
        if points == "merge":
            return merge_points(path, **merge_options).merged
        return load_run(path, kinds)
    if not path.exists():
        raise ScalingError(f"{path}: no such file or run directory")
    if points == "merge":
        raise ScalingError(f"{path}: --points merge needs run directories (merges are computed from checkpoints), not a CSV")
    return load_csv(path, columns)


def load_points(sources: Sequence[str | Path], *, points: str = "finished", kinds: Sequence[str] = FINISHED_KINDS, columns: Columns | None = None, **merge_options) -> Points:
    """Points from several CSV/TSV files and/or run directories, concatenated (labels keep their origin).

    ``columns`` names the N/D/C/loss headers of the CSV files (aliases are tried otherwise); it is
    refused when every source is a run directory, so an explicit column name is never ignored.
    """
    if not sources:
        raise ScalingError("no sources given (CSV files or run directories)")
    if columns is not None and columns.given() and all(Path(s).is_dir() for s in sources):
        flags = ", ".join(f"{COLUMN_FLAGS[k]} {v}" for k, v in columns.given().items())
        raise ScalingError(f"{flags}: column names apply to CSV/TSV files, and every source is a run directory")
    return concat([load_source(s, points=points, kinds=kinds, columns=columns, **merge_options) for s in sources])
