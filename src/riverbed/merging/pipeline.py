"""``riverbed.merge(out, inputs, method=...)``: validate a recipe, order the inputs, check OUT,
compute weights, plan, stream. ``replay(recipe_file, out)`` runs a recipe a merge wrote."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riverbed.checkpoints import layout
from riverbed.checkpoints.formats import open_input
from riverbed.errors import MergeError
from riverbed.merging.card import CONFIG, config_with_dtype, model_card, model_files
from riverbed.merging.engine import MergeResult, execute
from riverbed.merging.merge_plan import OUT_DTYPES, build_plan, check_disk_space, parse_size
from riverbed.merging.order import Position, order_inputs
from riverbed.merging.overwrite import check_merge_output
from riverbed.merging.recipe import MergeRecipe, load_recipe
from riverbed.merging.select import select_checkpoints, spacing_note
from riverbed.merging.weights import weights_for
from riverbed.version import __version__


def merge(
    out: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]] = (),
    method: str | None = None,
    *,
    run: str | os.PathLike[str] | None = None,
    last: int | None = None,
    every: int | None = None,
    unit: str = "steps",
    branch: str = layout.MAIN,
    weights: Sequence[float] | None = None,
    alpha: float | None = None,
    ema_form: str | None = None,
    wma_by: str | None = None,
    steps: Sequence[int] | None = None,
    order: str = "step",
    dtype: str | None = None,
    accumulate: str = "fp32",
    max_shard_size: str | int = "5GB",
    allow_nonfinite: bool = False,
    threads: int | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    verbose: bool = True,
) -> MergeResult:
    """Merge checkpoints into ``out``: M = sum_i w_i M_i, streamed chunk by chunk.

    ``inputs``: riverbed checkpoint dirs, Hugging Face model dirs (single or sharded safetensors,
    or pytorch_model.bin), or single .safetensors files; put in step order (``order="step"``,
    from state.json / trainer_state.json / a checkpoint-N name) unless ``order="given"``.
    ``method``: ``sma`` (default), ``ema`` (``alpha``, ``ema_form`` "recursive" | "normalized"),
    ``wma`` (``wma_by`` "position" | "step" | "tokens") or ``weights`` (explicit, normalised);
    ``weights`` or ``alpha`` without ``method`` imply ``weights`` / ``ema``, and a parameter of
    another method is an error. ``steps``: the inputs' training steps (read from them if None).
    ``dtype``: bf16 / fp16 / fp32 (default: the input dtype; config.json follows it);
    ``accumulate``: fp32 / fp64. Inputs holding NaN / inf are refused unless ``allow_nonfinite``.
    ``out`` is a directory (Hugging Face layout, sharded above ``max_shard_size``, the newest
    input's model and tokenizer files, ``merge.json`` and a model card ``README.md``) or a single
    ``.safetensors`` file; it may never be, contain or lie inside an input or a run directory.
    ``run`` (instead of ``inputs``): the last ``last`` checkpoints of ``branch``, ``every`` steps (or
    tokens, ``unit``) apart (:func:`riverbed.merging.select.select_checkpoints`), recorded as the
    recipe's ``selection``.

    >>> # r = riverbed.merge("merged", ["ckpt_a", "ckpt_b", "ckpt_c"], method="ema", alpha=0.2)
    >>> # r.weights  -> (0.64, 0.16, 0.2)
    """
    if method == "wma" and steps is not None and wma_by is None:
        wma_by = "step"  # merge(..., "wma", steps=[...]) has always meant weights by step
    tokens = selection = None
    if run is not None:
        if inputs:
            raise MergeError(f"give either input checkpoints or --run, not both (got --run {run} and {inputs[0]})")
        if last is None or every is None:
            raise MergeError("--run needs --last N and --every V")
        picked = select_checkpoints(run, last, every, unit=unit, branch=branch)
        inputs = [str(s.path) for s in picked]
        steps = tuple(s.step for s in picked)
        tokens = tuple(s.tokens for s in picked) if unit == "tokens" else None
        if wma_by == "step" and unit == "tokens":
            wma_by = "tokens"  # --wma-by step --unit tokens: weights proportional to the tokens seen
        shown = steps if unit == "steps" else tokens
        note = spacing_note(shown, every, unit)
        selection = {"run": str(run), "last": last, "every": every, "unit": unit, "branch": branch,
                     **({"spacing_used": [b - a for a, b in zip(shown, shown[1:])], "spacing_note": note} if note else {})}
        _say(verbose, f"selected {len(picked)} checkpoints of {run} ({branch}): {unit} " + ", ".join(str(x) for x in shown))
        if note:
            _say(verbose, f"note: {note}")
    if not inputs:
        raise MergeError("merge needs at least one input checkpoint")
    recipe = MergeRecipe(tuple(str(p) for p in inputs), method=method, weights=tuple(weights) if weights is not None else None,
                         alpha=alpha, ema_form=ema_form, wma_by=wma_by, steps=tuple(steps) if steps is not None else None,
                         tokens=tokens, order=order, dtype=dtype, accumulate=accumulate, max_shard_size=max_shard_size,
                         allow_nonfinite=allow_nonfinite)
    return run_recipe(recipe, out, selection=selection, threads=threads, dry_run=dry_run, overwrite=overwrite,
                      progress=progress, verbose=verbose)


def replay(recipe: str | os.PathLike[str], out: str | os.PathLike[str], *, threads: int | None = None, dry_run: bool = False,
           overwrite: bool = False, progress: bool = True, verbose: bool = True, allow_nonfinite: bool = False) -> MergeResult:
    """Run the recipe in ``recipe`` (``merge.json``, a merged directory, ``.toml`` or ``.yaml``) into ``out``.
    A recipe that recorded its weights must reproduce them (else the inputs or riverbed changed).

    >>> # riverbed.merging.replay("merged/merge.json", "merged-again")
    """
    r, recorded = load_recipe(recipe)
    if allow_nonfinite and not r.allow_nonfinite:
        r = dataclasses.replace(r, allow_nonfinite=True)
    return run_recipe(r, out, threads=threads, dry_run=dry_run, overwrite=overwrite, progress=progress, verbose=verbose,
                      recorded_weights=recorded)


def _say(verbose: bool, text: str, err: bool = False) -> None:
    if verbose:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)


def _ordered(recipe: MergeRecipe) -> tuple[MergeRecipe, str | None]:
    """The recipe with its inputs oldest first and their steps/tokens filled in, and a warning."""
    known = None
    if recipe.steps is not None:
        tokens = recipe.tokens or (None,) * len(recipe.inputs)
        known = [Position(s, t, "recipe") if s is not None else None for s, t in zip(recipe.steps, tokens)]
    inputs, positions, warning = order_inputs(list(recipe.inputs), recipe.order, known)
    if warning and recipe.method == "sma" and tuple(inputs) == recipe.inputs:
        warning = None  # unknown steps do not matter to equal weights
    steps = tuple(p.step if p else None for p in positions)
    tokens = tuple(p.tokens if p else None for p in positions)
    return dataclasses.replace(recipe, inputs=tuple(inputs), steps=None if all(s is None for s in steps) else steps,
                               tokens=None if all(t is None for t in tokens) else tokens), warning


def _weights(recipe: MergeRecipe) -> tuple[float, ...]:
    by = {"step": recipe.steps, "tokens": recipe.tokens}.get(recipe.wma_by or "position")
    if recipe.method == "wma" and recipe.wma_by != "position":
        missing = [p for p, v in zip(recipe.inputs, by or (None,) * len(recipe.inputs)) if v is None]
        if missing:
            raise MergeError(f"--wma-by {recipe.wma_by} needs the {recipe.wma_by} of every input; unknown for {missing[0]}")
    return weights_for(recipe.method or "sma", len(recipe.inputs), alpha=recipe.alpha, ema_form=recipe.ema_form or "recursive",
                       weights=recipe.weights, steps=[float(v) for v in by] if recipe.method == "wma" and by is not None and recipe.wma_by != "position" else None)


_BLOCK = 4096


def run_recipe(recipe: MergeRecipe, out: str | os.PathLike[str], *, threads: int | None = None, dry_run: bool = False,
               overwrite: bool = False, progress: bool = True, verbose: bool = True,
               recorded_weights: Sequence[float] | None = None, selection: dict[str, Any] | None = None) -> MergeResult:
    """Execute a validated :class:`MergeRecipe` into ``out`` (what :func:`merge` and :func:`replay` call)."""
    t0 = time.perf_counter()
    out = Path(out)
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise MergeError(f"threads must be a positive integer, got {threads!r}")
    check_merge_output(out, recipe.inputs, overwrite=overwrite, dry_run=dry_run)
    recipe, warning = _ordered(recipe)
    for note in recipe.notes:
        _say(verbose, f"note: {note}")
    if warning and verbose:
        _say(verbose, f"warning: {warning}", err=True)
    elif warning:
        warnings.warn(warning, UserWarning, stacklevel=3)  # API callers without output still hear of it
    w = _weights(recipe)
    if recorded_weights is not None and (len(recorded_weights) != len(w) or any(not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(w, recorded_weights))):
        raise MergeError(f"the recipe recorded weights {list(recorded_weights)} but its method gives {list(w)}: the inputs' steps changed since")
    sources = [open_input(p) for p in recipe.inputs]
    # shard files may be symlinks elsewhere (the Hugging Face cache): protect what is really read
    check_merge_output(out, [*recipe.inputs, *(f for s in sources for f in s.files)], overwrite=overwrite, dry_run=dry_run)
    written = recipe.to_dict(w, riverbed_version=__version__, **({"selection": selection} if selection else {}))
    written["inputs"] = [os.path.abspath(p) for p in recipe.inputs]  # replayable from any directory
    metadata = {
        "riverbed_version": __version__,
        "merge_method": str(recipe.method),
        "merge_weights": json.dumps(list(w)),
        "merge_inputs": json.dumps(list(recipe.inputs)),
        "merge_recipe": json.dumps(written, allow_nan=False),
    }
    single = out.name if out.suffix == ".safetensors" else None
    plan = build_plan(sources, w, dtype=recipe.dtype, max_shard_size=parse_size(recipe.max_shard_size), metadata=metadata, single_file=single)
    steps_text = ", ".join("?" if s is None else str(s) for s in recipe.steps) if recipe.steps else None
    _say(verbose, f"merge plan -> {out}{'  (dry run)' if dry_run else ''}  (order: {recipe.order}{'; steps ' + steps_text if steps_text else ''})\n{plan.describe()}")
    if dry_run:
        _say(verbose, "recipe (replay: riverbed merge --recipe FILE OUT):\n" + json.dumps(written, indent=2, allow_nan=False))
        return MergeResult(out, w, plan, [], time.perf_counter() - t0, dry_run=True, recipe=written)
    timings = {"plan": time.perf_counter() - t0}
    extra: dict[str, Path | bytes] = {}
    if single is None:
        newest = sources[-1].directory
        for f in model_files(newest):
            extra[f.name] = f
        if recipe.dtype is not None and CONFIG in extra:
            extra[CONFIG] = config_with_dtype(extra[CONFIG], OUT_DTYPES[recipe.dtype])  # type: ignore[arg-type]
        extra["README.md"] = model_card(written, list(recipe.inputs), w, recipe.steps).encode("utf-8")
        extra["merge.json"] = (json.dumps(written, indent=1, allow_nan=False) + "\n").encode("utf-8")  # its size, for the estimate
    # Everything the output holds besides the shards (config.json, tokenizer files, merge.json, the card),
    # each rounded up to a filesystem block, counts towards the free space needed.
    sizes = [len(c) if isinstance(c, bytes) else c.stat().st_size for c in extra.values()]
    check_disk_space(plan, out, extra=sum(-(-n // _BLOCK) * _BLOCK for n in sizes) + _BLOCK * (len(plan.shards) + 1))
    extra.pop("merge.json", None)  # written by the engine from the recipe itself
    files = execute(plan, sources, out, accumulate=recipe.accumulate, threads=threads, overwrite=overwrite, progress=progress,
                    recipe=written if single is None else None, extra_files=extra, check_finite=not recipe.allow_nonfinite, timings=timings)
    return MergeResult(out, w, plan, files, time.perf_counter() - t0, timings=timings, recipe=written)
