"""The resume rule: what a resumed run may change -- its length, cadences and hardware, never
its trajectory. ``riverbed train`` (a config file or ``--set`` against the stored run) and
:meth:`riverbed.runs.Run.create` (``resume=True``) both ask :func:`check_resume`.

>>> check_resume({"train": {"max_steps": 10}}, {"train": {"max_steps": 20}}, source="run.toml", stored="runs/x")
>>> changed_keys({"optim": {"lr": 1e-3}}, {"optim": {"lr": 2e-3}})
['optim.lr']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from riverbed.errors import RunError

# Keys that may differ when a run is resumed: they change how long and how often, never what
# is computed (grad_accum and dtype change rounding, not the maths; they are allowed on purpose
# so a run can move to other hardware).
RESUMABLE = frozenset({
    "train.max_steps", "train.max_tokens", "train.ckpt_every", "train.ckpt_every_tokens", "train.eval_every",
    "train.log_every", "train.device", "train.threads", "train.tensorboard", "train.grad_accum", "train.dtype",
    "train.parallel",  # how the same maths is spread over processes: resharded on resume
    "train.keep",  # the retention plan decides which checkpoints stay on disk, never what is trained
})


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys (``section.key``, nested for schedules) whose values differ, sorted."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def check_resume(old: Mapping[str, Any], new: Mapping[str, Any], *, source: str, stored: str) -> None:
    """RunError naming the first key outside :data:`RESUMABLE` that differs between the run's
    config (``old``, kept at ``stored``) and the one it is resumed with (``new``, from ``source``)."""
    changed = [k for k in changed_keys(old, new) if k not in RESUMABLE]
    if changed:
        key = changed[0]
        raise RunError(f"{source}: {key} differs from the run's {stored} ({_get(old, key)!r} -> {_get(new, key)!r}); "
                       f"a resumed run may only change {', '.join(sorted(RESUMABLE))}")


def _get(d: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        d = d.get(part) if isinstance(d, Mapping) else None
    return d
