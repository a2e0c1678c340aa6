"""Where a merge may write: never to, over, inside or above one of its inputs or a run directory.

A merge output replaces what is at OUT (``--overwrite``), so OUT is checked against every path the
merge reads, after resolving symbolic links (``ckpts/latest -> step_2000`` is ``step_2000``):

* OUT is an input (a directory or a ``.safetensors`` file), or a file an input reads;
* OUT is inside an input (``ckpt-20/merged``): the input would hold a foreign directory;
* OUT contains an input (``ckpts/`` holding ``ckpts/step_100``): replacing OUT deletes it;
* OUT is, is inside or contains a riverbed run directory (one with ``run.json``).

Each case is refused whatever the flags, naming the input. An existing OUT may be replaced only
when it is an earlier merge output (a directory with ``merge.json``, or a ``.safetensors`` file
whose header carries a merge recipe), so a forgotten OUT (``riverbed merge ckpt-20 ckpt-30``) can
never be destroyed by following the advice in an error message.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.errors import MergeError

RECIPE_FILE = "merge.json"
_HEADER_PROBE = 1 << 20  # a merge output's header holds the recipe in its first bytes


def is_inside(child: Path, parent: Path) -> bool:
    """True when ``child`` is ``parent`` or lies below it (both already resolved)."""
    return child == parent or parent in child.parents


def _resolved(path: str | os.PathLike[str]) -> Path:
    # realpath follows every symlink that exists and keeps the rest as written: a not-yet-created
    # OUT under a symlinked parent resolves to where it would really be created.
    return Path(os.path.realpath(os.path.abspath(path)))


def _run_dir_at_or_above(path: Path) -> Path | None:
    for p in (path, *path.parents):
        if (p / layout.MANIFEST).is_file():
            return p
    return None


def _run_dir_below(path: Path, depth: int = 2) -> Path | None:
    # Bounded: OUT may be a big tree (``riverbed merge ~ ...``); it is refused either way, this
    # only finds the better message for ``riverbed merge runs/ ...``.
    if depth < 0 or not path.is_dir():
        return None
    if (path / layout.MANIFEST).is_file():
        return path
    try:
        children = sorted(c for c in path.iterdir() if c.is_dir() and not c.is_symlink() and not c.name.startswith("."))
    except OSError:
        return None
    for child in children[:1000]:
        found = _run_dir_below(child, depth - 1)
        if found is not None:
            return found
    return None


def is_merge_output(path: Path) -> bool:
    """An earlier merge output: a directory with ``merge.json``, or a ``.safetensors`` file whose
    header metadata carries ``merge_recipe`` (what :func:`riverbed.merge` writes)."""
    if path.is_dir():
        return (path / RECIPE_FILE).is_file() and not (path / layout.STATE_FILE).exists() and not (path / layout.MANIFEST).exists()
    if path.is_file() and path.suffix == ".safetensors":
        try:
            with open(path, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                raw = fh.read(min(n, _HEADER_PROBE))
            meta = json.loads(raw.decode("utf-8")).get("__metadata__") or {}
        except (OSError, struct.error, ValueError, AttributeError):
            return False
        return isinstance(meta, dict) and "merge_recipe" in meta
    return False


def check_output(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], *, overwrite: bool,
                 dry_run: bool = False) -> None:
    """Raise :class:`MergeError` unless writing ``out`` is safe for ``inputs`` (paths the merge
    reads: input directories and files, and the shard files they name).

    >>> # check_output("merged", ["ckpts/step_100", "ckpts/step_200"], overwrite=False)
    """
    out_path = Path(out)
    if out_path.is_symlink():
        target = os.readlink(out_path)
        state = "a dangling symbolic link" if not out_path.exists() else "a symbolic link"
        raise MergeError(f"output {out_path} is {state} (-> {target}); give the real output path instead")
    for parent in out_path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise MergeError(f"output {out_path} cannot be created: {parent} is a file, not a directory")
    real_out = _resolved(out_path)
    for given in inputs:
        real_in = _resolved(given)
        where = f"{given}" if str(given) == str(real_in) else f"{given} (= {real_in})"
        if real_out == real_in:
            raise MergeError(f"output {out} is the merge input {where}; a merge never writes over its inputs: choose another OUT")
        if is_inside(real_out, real_in):
            raise MergeError(f"output {out} is inside the merge input {where}; a merge never writes into its inputs: choose another OUT")
        if is_inside(real_in, real_out):
            raise MergeError(f"output {out} contains the merge input {where}; replacing it would delete that input: choose another OUT")
    run = _run_dir_at_or_above(real_out)
    if run is not None:
        what = "is" if run == real_out else "is inside"
        raise MergeError(f"output {out} {what} the run directory {run} (it has {layout.MANIFEST}); "
                         "a merge never writes into a run: choose an OUT outside it")
    if dry_run or not real_out.exists():
        return
    below = _run_dir_below(real_out)
    if below is not None:
        raise MergeError(f"output {out} contains the run directory {below}; a merge never replaces a run: choose another OUT")
    if not is_merge_output(real_out):
        kind = "a checkpoint" if (real_out / layout.MODEL_FILE).exists() or real_out.suffix == ".safetensors" else "not an earlier merge output"
        raise MergeError(f"output {out} already exists and is {kind} (no {RECIPE_FILE}); riverbed replaces only an earlier "
                         "merge output, even with --overwrite. Did you forget OUT? usage: riverbed merge OUT IN1 IN2 ...")
    if not overwrite:
        raise MergeError(f"output {out} already exists (an earlier merge output): pass --overwrite / overwrite=True to replace it")
