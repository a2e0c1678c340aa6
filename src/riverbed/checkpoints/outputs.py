"""Where any verb may write: the one check of every output path (``-o``, ``--plot``, ``--out``, a merge's OUT).

An output never touches what riverbed reads or keeps. :func:`check_output` refuses, after resolving
symbolic links (``ckpts/latest -> step_2000`` is ``step_2000``), an output path that

* is a symbolic link itself (writing would replace the link, not what it points to), or sits under a
  parent that is a file;
* is, is inside or contains one of the verb's inputs;
* is a file of a run tree (``run.json``, ``config.toml``, ``.lock``, anything under ``branches/``,
  ``init-merge/`` or ``jobs/``) or the run directory itself -- and, for a verb that never writes into a
  run at all (a merge), anything inside a run directory;
* lies inside a checkpoint directory (one holding ``model.safetensors`` or its sharded index);
* is an existing directory where a file is written, or (for a directory output) contains a run.

Whether an existing output may be *replaced* is the verb's own rule (a report page only when riverbed
wrote it, a merge OUT only when it is an earlier merge output): this check is about what an output
must never be. Files a verb writes *beside* its named output go through the same check.

>>> check_output("fit.json", flag="-o", inputs=["runs/tiny"])  # doctest: +SKIP
PosixPath('/home/me/fit.json')
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.errors import RiverbedError

# The entries of a run directory that belong to the run tree (everything else there, such as
# report.html, is an output a verb may write). Hidden temporaries of these are covered by name.
RUN_ENTRIES = (layout.MANIFEST, layout.CONFIG, layout.RUN_LOCK, layout.BRANCHES, layout.INIT_MERGE, layout.JOBS)
# A checkpoint directory holds its weights (riverbed's and Hugging Face's layout: one file or a sharded
# index). A state.json alone marks nothing (the name is common), and a run's own checkpoints are covered
# by the run-tree rule whatever they hold.
CHECKPOINT_MARKERS = (layout.MODEL_FILE, "model.safetensors.index.json")


def resolved(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute with every existing symbolic link followed (the rest kept as written:
    a not-yet-created output under a symlinked parent resolves to where it would really be made)."""
    return Path(os.path.realpath(os.path.abspath(path)))


def is_inside(child: Path, parent: Path) -> bool:
    """True when ``child`` is ``parent`` or lies below it (both already resolved)."""
    return child == parent or parent in child.parents


def run_dir_at_or_above(path: Path) -> Path | None:
    """The run directory (one holding run.json) that ``path`` is or lies inside, if any."""
    for p in (path, *path.parents):
        if (p / layout.MANIFEST).is_file():
            return p
    return None


def run_dir_below(path: Path, depth: int = 2) -> Path | None:
    """A run directory at most ``depth`` levels below ``path`` (bounded: ``path`` may be ``~``)."""
    if depth < 0 or not path.is_dir() or path.is_symlink():
        return None
    if (path / layout.MANIFEST).is_file():
        return path
    try:
        children = sorted(c for c in path.iterdir() if c.is_dir() and not c.is_symlink() and not c.name.startswith("."))
    except OSError:
        return None
    for child in children[:1000]:
        found = run_dir_below(child, depth - 1)
        if found is not None:
            return found
    return None


def _run_entry(name: str) -> str | None:
    """The run-tree entry a name in a run directory is or is a hidden temporary of."""
    for entry in RUN_ENTRIES:
        if name == entry or (name.startswith(f".{entry.lstrip('.')}.") or name.startswith(f"{entry}.")):
            return entry
    return None


def check_output(out: str | os.PathLike[str], *, flag: str, inputs: Iterable[str | os.PathLike[str]] = (),
                 directory: bool = False, inside_run: bool = True, suffixes: Sequence[str] | None = None,
                 input_word: str = "input", error: type[RiverbedError] = RiverbedError) -> Path:
    """Raise ``error`` (naming ``flag``, the path and the reason) unless ``out`` may be written; return
    it resolved.

    ``inputs``: every path the verb reads (directories and files). ``directory``: the output is a
    directory (replacing it would delete what it contains). ``inside_run``: whether the output may lie
    in a run directory at all (outside the run's own files). ``suffixes``: the allowed file suffixes.
    """
    out_path = Path(out)
    label = f"{flag} {out}"
    if out_path.name in ("", "..") or str(out).endswith(("/", os.sep)):
        raise error(f"{label}: name the output itself (a path ending in '..' or '/' names a folder around it)")
    if suffixes is not None and out_path.suffix.lower() not in suffixes:
        names = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
        raise error(f"{label}: expected a {names} file")
    if out_path.is_symlink():
        state = "a dangling symbolic link" if not out_path.exists() else "a symbolic link"
        raise error(f"{label} is {state} (-> {os.readlink(out_path)}); give the real output path instead")
    for parent in out_path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise error(f"{label} cannot be created: {parent} is a file, not a directory")
    real = resolved(out_path)
    if not directory and real.is_dir():
        raise error(f"{label} is a directory; name the file to write")
    for given in inputs:
        real_in = resolved(given)
        where = f"{given}" if str(given) == str(real_in) else f"{given} (= {real_in})"
        if real == real_in:
            raise error(f"{label} is the {input_word} {where}; an output never replaces an input: choose another path")
        if is_inside(real, real_in):
            raise error(f"{label} is inside the {input_word} {where}; an output never writes into an input: choose another path")
        if is_inside(real_in, real):
            raise error(f"{label} contains the {input_word} {where}; replacing it would delete that input: choose another path")
    run = run_dir_at_or_above(real)
    if run is not None:
        entry = None if real == run else _run_entry(real.relative_to(run).parts[0])
        if real == run or entry is not None or not inside_run:
            what = "is" if real == run else "is inside"
            own = f" ({entry}: one of the run's own files)" if entry else f" (it has {layout.MANIFEST})"
            raise error(f"{label} {what} the run directory {run}{own}; an output never writes over a run's files: "
                        "choose a path outside it")
    for parent in real.parents:
        marker = next((m for m in CHECKPOINT_MARKERS if (parent / m).is_file()), None)
        if marker is not None:
            raise error(f"{label} is inside {parent}, which is a checkpoint ({marker} there); "
                        "an output never writes into a checkpoint: choose another path")
    if directory and real.is_dir():
        below = run_dir_below(real)
        if below is not None:
            raise error(f"{label} contains the run directory {below}; an output never replaces a run: choose another path")
    return real


def check_beside(paths: Iterable[Path], *, flag: str, owned: Callable[[Path], bool], inputs: Iterable[str | os.PathLike[str]] = (),
                 error: type[RiverbedError] = RiverbedError) -> None:
    """The files a verb writes beside its named output: each passes :func:`check_output`, and an
    existing one is replaced only when ``owned(path)`` says riverbed wrote it."""
    inputs = list(inputs)
    for p in paths:
        check_output(p, flag=f"{flag} (beside it)", inputs=inputs, error=error)
        if p.exists() and not owned(p):
            raise error(f"{flag}: {p} would be written beside the output but exists and was not written by riverbed; "
                        "refusing to replace it (choose another output name)")
