"""Which existing OUT a merge may replace: only an earlier merge output, and only with ``--overwrite``.

What an output may never be (an input, inside one, a run's files, a checkpoint) is the one output
check of every verb (:func:`riverbed.checkpoints.outputs.check_output`); a merge adds two rules:
it never writes anywhere inside a run directory, and an existing OUT is replaced only when it is an
earlier merge output (a directory with ``merge.json``, or a ``.safetensors`` file whose header carries
a merge recipe), so a forgotten OUT (``riverbed merge ckpt-20 ckpt-30``) can never be destroyed by
following the advice in an error message.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.checkpoints.outputs import check_output
from riverbed.errors import MergeError

RECIPE_FILE = "merge.json"
_HEADER_PROBE = 1 << 20  # a merge output's header holds the recipe in its first bytes


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


def check_merge_output(out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], *, overwrite: bool,
                       dry_run: bool = False) -> None:
    """Raise :class:`MergeError` unless writing ``out`` is safe for ``inputs`` (paths the merge
    reads: input directories and files, and the shard files they name).

    >>> # check_merge_output("merged", ["ckpts/step_100", "ckpts/step_200"], overwrite=False)
    """
    directory = Path(out).suffix != ".safetensors"
    real_out = check_output(out, flag="output", inputs=inputs, directory=directory, inside_run=False,
                            input_word="merge input", error=MergeError)
    if dry_run or not real_out.exists():
        return
    if not is_merge_output(real_out):
        kind = "a checkpoint" if (real_out / layout.MODEL_FILE).exists() or real_out.suffix == ".safetensors" else "not an earlier merge output"
        raise MergeError(f"output {out} already exists and is {kind} (no {RECIPE_FILE}); riverbed replaces only an earlier "
                         "merge output, even with --overwrite. Did you forget OUT? usage: riverbed merge OUT IN1 IN2 ...")
    if not overwrite:
        raise MergeError(f"output {out} already exists (an earlier merge output): pass --overwrite / overwrite=True to replace it")
