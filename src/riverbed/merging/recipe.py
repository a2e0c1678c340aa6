"""A merge recipe: everything that decides a merge's bytes, validated once, replayable from a file.

Every merge writes its recipe to ``OUT/merge.json``; ``riverbed merge --recipe merge.json OUT``
(or a TOML / YAML file with the same keys) replays it. A flag that does not apply to the chosen
method is an error, never ignored; a weight flag without ``--method`` implies its method
(``--weights`` -> ``weights``, ``--alpha`` / ``--ema-form`` -> ``ema``, ``--wma-by`` -> ``wma``).

TOML form::

    inputs = ["out/checkpoint-500", "out/checkpoint-1000", "out/checkpoint-1500"]
    method = "ema"
    alpha = 0.2
    dtype = "bf16"

>>> r = MergeRecipe(inputs=("a", "b"), alpha=0.5)
>>> r.method, r.ema_form
('ema', 'recursive')
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riverbed.io.input_files import read_text
from riverbed.errors import MergeError
from riverbed.merging.order import ORDERS
from riverbed.merging.weights import EMA_FORMS

METHODS = ("sma", "ema", "wma", "weights")
WMA_BY = ("position", "step", "tokens")
ACCUMULATE = ("fp32", "fp64")
DTYPES = ("bf16", "fp16", "fp32", "bfloat16", "float16", "float32")
FORMAT = "riverbed-merge-recipe/1"
# Keys a written merge.json carries for provenance only; accepted (and checked) on replay.
INFO_KEYS = ("format", "riverbed_version", "selection", "effective_weights")


def _floats(key: str, value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise MergeError(f"recipe key {key!r} must be a list of numbers, got {value!r}")
    out = tuple(float(v) for v in value)
    if not all(math.isfinite(v) for v in out):
        raise MergeError(f"recipe key {key!r} must hold finite numbers, got {list(value)!r}")
    return out


def _ints(key: str, value: Any) -> tuple[int | None, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in value):
        raise MergeError(f"recipe key {key!r} must be a list of non-negative integers (or null), got {value!r}")
    return tuple(value)


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise MergeError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True)
class MergeRecipe:
    """What to merge and how. ``None`` for ``method`` means: implied by the other fields, else sma."""

    inputs: tuple[str, ...]
    """Checkpoints to merge (oldest first once ordered)."""
    method: str | None = None
    """sma | ema | wma | weights (None: implied by ``weights`` / ``alpha`` / ``wma_by``, else sma)."""
    weights: tuple[float, ...] | None = None
    """Explicit weights, one per input (method ``weights`` only; normalised to sum to 1)."""
    alpha: float | None = None
    """EMA alpha (method ``ema`` only; the PMA paper tested 0.1 and 0.2)."""
    ema_form: str | None = None
    """recursive | normalized (method ``ema`` only; default recursive)."""
    wma_by: str | None = None
    """position | step | tokens (method ``wma`` only; default position)."""
    steps: tuple[int | None, ...] | None = None
    """Training step of each input (read from the inputs when not given)."""
    tokens: tuple[int | None, ...] | None = None
    """Tokens seen by each input (riverbed state.json / Trainer num_input_tokens_seen), when known."""
    order: str = "step"
    """step: sort the inputs by their step; given: keep the order as given."""
    dtype: str | None = None
    """Output dtype of float tensors: bf16 | fp16 | fp32 (None: the input dtype)."""
    accumulate: str = "fp32"
    """Accumulation dtype: fp32 | fp64."""
    max_shard_size: str | int = "5GB"
    """Largest output shard (5GB, 500MB, 2GiB or bytes)."""
    allow_nonfinite: bool = False
    """Merge inputs holding NaN / inf instead of refusing them."""
    notes: tuple[str, ...] = field(default=(), compare=False)
    """What was implied (e.g. "--weights given: using --method weights"), for printing."""

    def __post_init__(self) -> None:
        if isinstance(self.inputs, (str, bytes)) or not self.inputs:
            raise MergeError("merge needs at least one input checkpoint (recipe key 'inputs')")
        object.__setattr__(self, "inputs", tuple(str(p) for p in self.inputs))
        object.__setattr__(self, "weights", _floats("weights", self.weights))
        object.__setattr__(self, "steps", _ints("steps", self.steps))
        object.__setattr__(self, "tokens", _ints("tokens", self.tokens))
        notes = list(self.notes)
        method = self.method
        if method is None:
            implied = [(m, why) for m, why in (("weights", self.weights is not None), ("ema", self.alpha is not None or self.ema_form is not None),
                                               ("wma", self.wma_by is not None)) if why]
            if len(implied) > 1:
                raise MergeError(f"flags for different methods given together ({', '.join(m for m, _ in implied)}): pass --method to choose one")
            method = implied[0][0] if implied else "sma"
            if implied:
                flag = {"weights": "--weights", "ema": "--alpha/--ema-form", "wma": "--wma-by"}[method]
                notes.append(f"{flag} given without --method: using --method {method}")
        _choice("method", method, METHODS)
        for flag, value, owner in (("--weights", self.weights, "weights"), ("--alpha", self.alpha, "ema"),
                                   ("--ema-form", self.ema_form, "ema"), ("--wma-by", self.wma_by, "wma")):
            if value is not None and method != owner:
                raise MergeError(f"{flag} applies to --method {owner} only, not --method {method}")
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))):
            raise MergeError(f"alpha must be a number, got {self.alpha!r}")
        if method == "ema":
            object.__setattr__(self, "ema_form", self.ema_form or "recursive")
            _choice("ema_form", self.ema_form, EMA_FORMS)
        if method == "wma":
            object.__setattr__(self, "wma_by", self.wma_by or "position")
            _choice("wma_by", self.wma_by, WMA_BY)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "notes", tuple(notes))
        _choice("order", self.order, ORDERS)
        _choice("accumulate", self.accumulate, ACCUMULATE)
        if self.dtype is not None:
            _choice("output dtype", self.dtype, DTYPES)
        if not isinstance(self.allow_nonfinite, bool):
            raise MergeError(f"allow_nonfinite must be true or false, got {self.allow_nonfinite!r}")
        n = len(self.inputs)
        for key in ("weights", "steps", "tokens"):
            value = getattr(self, key)
            if value is not None and len(value) != n:
                raise MergeError(f"{key}: {len(value)} given ({list(value)}) for {n} inputs")

    def to_dict(self, effective_weights: tuple[float, ...] | None = None, **info: Any) -> dict[str, Any]:
        """The JSON form written to ``merge.json`` (strict JSON: no NaN)."""
        d: dict[str, Any] = {"format": FORMAT, "inputs": list(self.inputs), "method": self.method,
                             "weights": list(self.weights) if self.weights is not None else None,
                             "alpha": self.alpha, "ema_form": self.ema_form, "wma_by": self.wma_by,
                             "steps": list(self.steps) if self.steps is not None else None,
                             "tokens": list(self.tokens) if self.tokens is not None else None,
                             "order": self.order, "dtype": self.dtype, "accumulate": self.accumulate,
                             "max_shard_size": self.max_shard_size, "allow_nonfinite": self.allow_nonfinite}
        if effective_weights is not None:
            d["effective_weights"] = list(effective_weights)
        d.update(info)
        return d


def recipe_from_dict(data: dict[str, Any], source: str = "recipe") -> tuple[MergeRecipe, tuple[float, ...] | None]:
    """A :class:`MergeRecipe` from a parsed recipe file, and the weights it recorded (if any).
    Unknown keys are errors (a misspelt key must not be silently dropped)."""
    if not isinstance(data, dict):
        raise MergeError(f"{source}: a recipe must be a table / object of keys, got {type(data).__name__}")
    if "format" not in data and isinstance(data.get("inputs"), list):
        data = _legacy(data)
    known = {f for f in MergeRecipe.__dataclass_fields__ if f != "notes"} | set(INFO_KEYS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise MergeError(f"{source}: unknown recipe key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    if data.get("format", FORMAT) != FORMAT:
        raise MergeError(f"{source}: recipe format {data['format']!r} is not {FORMAT!r}")
    kwargs = {k: v for k, v in data.items() if k not in INFO_KEYS and v is not None}
    if "inputs" not in kwargs:
        raise MergeError(f"{source}: recipe has no 'inputs'")
    if not isinstance(kwargs["inputs"], list) or not all(isinstance(p, str) for p in kwargs["inputs"]):
        raise MergeError(f"{source}: 'inputs' must be a list of paths, got {kwargs['inputs']!r}")
    kwargs["inputs"] = tuple(kwargs["inputs"])
    try:
        recipe = MergeRecipe(**kwargs)
    except MergeError as exc:
        raise MergeError(f"{source}: {exc}") from None
    except TypeError as exc:  # a wrongly typed value reaching a comparison
        raise MergeError(f"{source}: {exc}") from None
    return recipe, _floats("effective_weights", data.get("effective_weights"))


def _legacy(data: dict[str, Any]) -> dict[str, Any]:
    """A ``merge.json`` of riverbed 0.1 (no ``format`` key): ``weights`` were the effective
    weights of any method and ``steps`` the float positions of a WMA by step."""
    data = dict(data)
    if data.get("method") not in (None, "weights") and "weights" in data:
        data["effective_weights"] = data.pop("weights")
    steps = data.get("steps")
    if isinstance(steps, list) and all(isinstance(v, float) and v.is_integer() and v >= 0 for v in steps):
        data["steps"] = [int(v) for v in steps]
        if data.get("method") == "wma":
            data.setdefault("wma_by", "step")
    if data.get("method") != "ema":
        data.pop("ema_form", None)  # 0.1 wrote ema_form only for ema, as null otherwise
    return data


def load_recipe(path: str | os.PathLike[str]) -> tuple[MergeRecipe, tuple[float, ...] | None]:
    """Read a recipe: ``merge.json`` (or a merged directory holding one), ``.toml``, ``.yaml``/``.yml``."""
    p = Path(path)
    if p.is_dir():
        p = p / "merge.json"
    text = read_text(p, "recipe", MergeError)
    if p.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise MergeError(f"recipe {p}: not valid TOML ({exc})") from exc
    elif p.suffix in (".yaml", ".yml"):
        try:
            import yaml  # optional (riverbed[yaml]); only YAML recipes need it
        except ImportError:
            raise MergeError(f"recipe {p}: YAML recipes need PyYAML (pip install 'riverbed[yaml]'); JSON and TOML need nothing") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise MergeError(f"recipe {p}: not valid YAML ({exc})") from exc
    else:
        def _no_constant(name: str) -> None:
            raise ValueError(f"{name} is not strict JSON")

        try:
            data = json.loads(text, parse_constant=_no_constant)
        except ValueError as exc:
            raise MergeError(f"recipe {p}: not valid JSON ({exc})") from exc
    return recipe_from_dict(data, f"recipe {p}")
