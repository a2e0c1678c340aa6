"""One column-mapping rule for every table riverbed reads: header names -> roles.

A role (``step``, ``lr``, ``loss``, ``n``, ``d``, ...) is found in a header either by the name
the user gave (``--lr-col learning_rate``) or by its aliases, compared after :func:`norm`
(case, surrounding spaces, ``-`` vs ``_``). Two columns that could both be one role are an
error asking for the flag, never a silent pick. The training-log readers (riverbed.runs.logs.read)
and the scaling fit's CSV reader (riverbed.scaling.points) both resolve through
:func:`resolve_columns`.

>>> resolve_columns(["_step", "train/loss", "trainer/learning_rate"], roles=LOG_ALIASES,
...                 given={}, flags=LOG_FLAGS, source="w.csv")
{'step': 0, 'lr': 2, 'loss': 1}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from riverbed.errors import LogError, RiverbedError

#: Training-log roles and their accepted names: riverbed's own first, then what Hugging Face
#: Trainer (trainer_state.json log_history, its TensorBoard tags), W&B exports (``_step``,
#: ``train/loss``, ``trainer/learning_rate``), Lightning and nanoGPT-style scripts write.
LOG_ALIASES: dict[str, tuple[str, ...]] = {
    "step": ("step", "_step", "global_step", "train/global_step", "trainer/global_step", "iter", "iteration", "steps"),
    "lr": ("lr", "learning_rate", "train/learning_rate", "trainer/learning_rate", "train/lr", "trainer/lr",
           "lr_adamw", "optim/lr", "learning_rate/group_0", "lr/group_0"),
    "loss": ("loss", "train/loss", "train_loss", "training_loss", "trainer/loss", "loss/train"),
    "eval_loss": ("eval_loss", "eval/loss", "val_loss", "val/loss", "validation_loss", "valid/loss", "loss/val",
                  "loss/eval", "eval/eval_loss", "heldout_loss"),
    "tokens": ("tokens", "num_input_tokens_seen", "train/num_input_tokens_seen", "tokens_seen", "train/tokens"),
}
#: The CLI flag that names each log role's column explicitly.
LOG_FLAGS = {"step": "--step-col", "lr": "--lr-col", "loss": "--loss-col", "eval_loss": "--eval-loss-col",
             "tokens": "--tokens-col"}


def norm(name: str) -> str:
    """The form header names are compared in: lower case, ``-`` as ``_``, inner spaces as ``_``."""
    return " ".join(name.strip().lower().replace("-", "_").split()).replace(" ", "_")


def resolve_columns(header: Sequence[str], *, roles: Mapping[str, Sequence[str]], given: Mapping[str, str],
                    flags: Mapping[str, str], source: str, required: Sequence[tuple[str, Sequence[str]]] = (),
                    label: Callable[[str], str] = str, error: type[RiverbedError] = LogError) -> dict[str, int]:
    """Column index per role: ``given`` names first (an absent one is an error naming its flag),
    then each role's aliases (two candidates for one role: an error asking for the flag).

    ``required``: (what to call it, roles any one of which must be found); the missing ones are
    one error listing the header and every role's accepted names. ``error`` is the exception
    class raised (each caller's own), ``label`` how a role is called in messages.
    """
    normed = [norm(h) for h in header]
    found: dict[str, int] = {}
    for role, name in given.items():
        if norm(name) not in normed:
            raise error(f"{source}: {flags[role]} {name!r} is not a column; header is {list(header)}")
        found[role] = normed.index(norm(name))
    for role, names in roles.items():
        if role in found:
            continue
        accepted = {norm(n) for n in names}
        hits = [i for i, h in enumerate(normed) if h in accepted and i not in found.values()]
        if len(hits) > 1:
            cols = ", ".join(repr(header[i]) for i in hits)
            raise error(f"{source}: columns {cols} could each be {label(role)}; choose one with {flags[role]}")
        if hits:
            found[role] = hits[0]
    missing = [what for what, any_of in required if not any(r in found for r in any_of)]
    if missing:
        hint = "; ".join(f"{label(r)}: {', '.join(names)}" for r, names in roles.items())
        named = "/".join(flags[r] for r in roles if r in flags)
        raise error(f"{source}: missing column(s) {', '.join(missing)}; header is {list(header)}. "
                    f"Accepted names ({hint}), or name them with {named}")
    return found


def delimiter(path: Path, first_line: str) -> str:
    """``\\t`` for a TSV (by extension, or a header with tabs and no commas: a spreadsheet's tab
    export), else ``,``."""
    if path.suffix.lower() in (".tsv", ".tab") or ("\t" in first_line and "," not in first_line):
        return "\t"
    return ","
