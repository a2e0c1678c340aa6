"""Small real inputs for the scaling tests: Epoch AI's points, synthetic laws, fake run trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from riverbed.runs.manifest import BranchRecord, Manifest, Point, write_manifest

DATA = Path(__file__).parent / "data" / "chinchilla_svg_extracted.csv"

# Epoch AI's grid + L-BFGS result on these points minus the 5 highest-loss ones (Besiroglu et al. 2024).
EPOCH = {"E": 1.8172, "A": 477.84, "B": 2143.86, "alpha": 0.3473, "beta": 0.3672}


def synthetic(law_params: dict[str, float], sizes, tokens, noise: float, seed: int = 0):
    """(n, d, loss) on the grid sizes x tokens, multiplicative log-normal noise."""
    n, d = np.meshgrid(np.asarray(sizes, float), np.asarray(tokens, float), indexing="ij")
    n, d = n.ravel(), d.ravel()
    p = law_params
    loss = p["E"] + p.get("A", 0.0) / n ** p.get("alpha", 0.0) * ("A" in p) + p["B"] / d ** p["beta"]
    loss = loss * np.exp(np.random.default_rng(seed).normal(0.0, noise, size=loss.shape))
    return n, d, loss


def fake_run(path: Path, n_params: int, points: list[tuple[str, str, int, float | None]], *, tokenizer: str = "byte", vocab: int = 256) -> Path:
    """A run directory whose manifest records finished branches (name, kind, tokens, loss).

    Written with the run tree's own manifest classes, no training: a scaling source only reads
    ``Run.finished_points()``.
    """
    path.mkdir(parents=True, exist_ok=True)
    main = BranchRecord(name="main", kind="main", schedule={"type": "warmup-stable"}, status="stopped", progress=Point(1000, 10**6, 6.0 * n_params * 10**6))
    branches = {"main": main}
    for name, kind, tokens, loss in points:
        final = Point(tokens // 1000, tokens, 6.0 * n_params * tokens, loss)
        parent = "main" if kind == "decay" else None
        fork = Point(int(0.8 * tokens) // 1000, int(0.8 * tokens), 0.0) if parent else None
        if kind == "wsds":
            branches[name] = BranchRecord(name=name, kind=kind, schedule={}, status="stopped", milestones=(final,))
        else:
            branches[name] = BranchRecord(name=name, kind=kind, schedule={}, parent=parent, fork=fork, status="finished", final=final)
    cfg = {"model": {"vocab_size": vocab}, "data": {"tokenizer": tokenizer}}
    write_manifest(path / "run.json", Manifest(config=cfg, model={"n_params": n_params}, branches=branches))
    return path


def law_run(path: Path, n_params: int, tokens, params: dict[str, float], **kw) -> Path:
    """A fake run whose decay ends follow ``params`` exactly (chinchilla law)."""
    pts = []
    for t in tokens:
        loss = params["E"] + params["A"] / n_params ** params["alpha"] + params["B"] / t ** params["beta"]
        pts.append((f"decay-{int(t)}", "decay", int(t), float(loss)))
    return fake_run(path, n_params, pts, **kw)
