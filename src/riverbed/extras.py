"""Optional dependencies and the pip extra that provides each one.

The core install (numpy, scipy, safetensors, rich, matplotlib) runs ``riverbed merge``,
``scaling``, ``schedule``, ``plan`` and ``ls``; training needs torch from the ``train`` extra.
A verb that reaches a missing optional module gets one clear message naming the extra
(the CLI turns it into exit 2) instead of a bare ``No module named 'torch'``.

>>> err = missing_extra(ModuleNotFoundError("No module named 'torch'", name="torch"), "riverbed train")
>>> print(err)
riverbed train needs torch, which is not installed: pip install 'riverbed[train]'
"""

from __future__ import annotations

from riverbed.errors import RiverbedError

#: Top-level module -> the extra that installs it (pyproject.toml [project.optional-dependencies]).
EXTRAS: dict[str, str] = {
    "torch": "train",
    "tensorboard": "tensorboard",
    "transformers": "hf",
    "accelerate": "hf",
    "tokenizers": "bpe",
    "ray": "ray",  # riverbed.executors: --executor ray
    "submitit": "slurm",  # riverbed.executors: --executor slurm
}


class MissingExtraError(RiverbedError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


def missing_extra(exc: ModuleNotFoundError, what: str) -> MissingExtraError | None:
    """The user-facing error for ``exc`` when it is a known optional module, else None (a bug)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return MissingExtraError(f"{what} needs {top}, which is not installed: pip install 'riverbed[{extra}]'")
