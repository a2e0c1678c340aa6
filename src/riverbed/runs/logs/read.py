"""Training logs as series of (step, value): CSV / TSV / W&B exports, JSONL, trainer_state.json, TensorBoard.

Every reader reduces its file to named columns, each a list of (step, value) pairs, and the
one column-mapping rule (riverbed.runs.logs.columns) picks the step, LR, training loss, held-out
loss and token columns by name or alias:

* ``*.csv`` / ``*.tsv``: a header row (``step,lr,loss``; a W&B export's ``_step``,
  ``train/loss``, ``trainer/learning_rate``, ...), one row per logged step; a blank cell is
  skipped (W&B writes a row per logging call, most cells empty);
* ``*.jsonl``: one JSON object per line (keys as the header; riverbed's metrics.jsonl too);
* ``trainer_state.json`` (or a Trainer ``output_dir`` / ``checkpoint-N`` folder holding one):
  its ``log_history`` entries (``loss``, ``learning_rate``, ``eval_loss``, ``num_input_tokens_seen``);
* TensorBoard event files (``events.out.tfevents.*``, or a folder of them): their scalar tags,
  read by the tensorboard package's own reader (``pip install 'riverbed[tensorboard]'``).

>>> log = read_log("trainer_state.json")             # doctest: +SKIP
>>> log.lr.steps[:3], log.loss.values[:3]             # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from riverbed.errors import LogError
from riverbed.extras import missing_extra
from riverbed.io.input_files import read_text, regular_file
from riverbed.runs.logs.columns import LOG_ALIASES, LOG_FLAGS, delimiter, norm, resolve_columns

TRAINER_STATE = "trainer_state.json"
_TB_PREFIX = "events.out.tfevents"
ROLES = tuple(LOG_ALIASES)


@dataclass(frozen=True)
class LogColumns:
    """Column (or tag, or key) names chosen explicitly per role; None = found by alias."""

    step: str | None = None
    lr: str | None = None
    loss: str | None = None
    eval_loss: str | None = None
    tokens: str | None = None

    def given(self) -> dict[str, str]:
        return {r: v for r in ROLES if (v := getattr(self, r)) is not None}


@dataclass(frozen=True)
class Series:
    """One logged quantity: strictly increasing steps and their finite values."""

    steps: np.ndarray
    values: np.ndarray
    column: str
    """The column, key or tag it was read from."""

    def __len__(self) -> int:
        return int(self.steps.size)

    def at(self, step: int) -> float | None:
        """The value logged at exactly ``step`` (None if none was)."""
        i = int(np.searchsorted(self.steps, step))
        return float(self.values[i]) if i < self.steps.size and self.steps[i] == step else None


@dataclass(frozen=True)
class Log:
    """What a training log holds, by role (None: the log has no such column)."""

    source: str
    kind: str
    """"csv" | "jsonl" | "trainer_state" | "tensorboard"."""
    series: dict[str, Series] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    """Every column, key or tag the file has (for messages)."""

    @property
    def lr(self) -> Series | None:
        return self.series.get("lr")

    @property
    def loss(self) -> Series | None:
        return self.series.get("loss")

    @property
    def eval_loss(self) -> Series | None:
        return self.series.get("eval_loss")

    @property
    def tokens(self) -> Series | None:
        return self.series.get("tokens")

    def require(self, *roles: str) -> None:
        """LogError naming the file, what it has and the flag, for each role it lacks."""
        for r in roles:
            if r in self.series and not len(self.series[r]):
                raise LogError(f"{self.source}: column {self.series[r].column!r} ({_what(r)}) holds no values")
        missing = [r for r in roles if r not in self.series]
        if missing:
            names = "; ".join(f"{r}: {', '.join(LOG_ALIASES[r])}" for r in missing)
            flags = ", ".join(LOG_FLAGS[r] for r in missing)
            what = ", ".join(f"{r} ({_what(r)})" for r in missing)
            raise LogError(f"{self.source}: missing column(s) {what} (it has: "
                           f"{', '.join(self.columns) or 'nothing'}); accepted names ({names}), or name it with {flags}")


def _what(role: str) -> str:
    return {"lr": "learning rate", "loss": "training loss", "eval_loss": "held-out loss", "step": "step",
            "tokens": "token count"}[role]


def _series(pairs: Sequence[tuple[float, float]], column: str, source: str) -> Series:
    """Pairs to a Series: non-finite values dropped, a step logged twice keeps its last value."""
    by_step: dict[int, float] = {}
    for st, v in pairs:
        if not math.isfinite(st) or st != int(st) or st < 0:
            raise LogError(f"{source}: column {column!r}: step {st!r} is not a whole number >= 0")
        if math.isfinite(v):
            by_step[int(st)] = float(v)
    steps = np.array(sorted(by_step), dtype=np.int64)
    return Series(steps, np.array([by_step[int(s)] for s in steps], dtype=np.float64), column)


def _from_columns(table: Mapping[str, list[tuple[float, float]]], source: str, kind: str,
                  columns: LogColumns, step_column: str | None = None) -> Log:
    header = list(table)
    found = resolve_columns(header, roles={r: a for r, a in LOG_ALIASES.items() if r != "step"},
                            given={r: v for r, v in columns.given().items() if r != "step"}, flags=LOG_FLAGS,
                            source=source, label=_what)
    series = {}
    for role, i in found.items():
        series[role] = _series(table[header[i]], header[i], source)
    shown = ([step_column] if step_column else []) + header
    return Log(source, kind, series, tuple(shown))


def _number(cell: object, where: str) -> float:
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return math.nan  # a blank cell: nothing logged there
    if isinstance(cell, bool):
        raise LogError(f"{where}: {cell!r} is not a number")
    if isinstance(cell, (int, float)):
        return float(cell)
    try:
        return float(str(cell).strip())
    except ValueError:
        raise LogError(f"{where}: {cell!r} is not a number") from None


def _rows_table(rows: Sequence[Mapping[str, object]], header: Sequence[str], source: str, kind: str,
                columns: LogColumns, where: Sequence[str]) -> Log:
    """Rows of a table (CSV rows, JSON objects) keyed by column; the step column found by alias."""
    idx = resolve_columns(list(header), roles={"step": LOG_ALIASES["step"]},
                          given={"step": columns.step} if columns.step else {}, flags=LOG_FLAGS, source=source,
                          required=(("step", ("step",)),), label=_what)
    step_col = header[idx["step"]]
    # A column that may be a role (by alias or by name) must hold numbers; any other column may
    # hold text (a W&B export's run name or state) and is then no candidate.
    chosen = {norm(v) for v in columns.given().values()} | {norm(a) for r in ROLES for a in LOG_ALIASES[r]}
    table: dict[str, list[tuple[float, float]]] = {h: [] for h in header if h != step_col}
    text: set[str] = set()
    for row, w in zip(rows, where):
        st = _number(row.get(step_col), f"{w}: column {step_col!r}")
        if math.isnan(st):
            continue  # a row without a step (a summary line) says nothing about the trajectory
        for h in table:
            cell = row.get(h)
            if h in text or isinstance(cell, (dict, list)):
                continue  # nested values (a JSON object) are no scalar column
            try:
                v = _number(cell, f"{w}: column {h!r}")
            except LogError:
                if norm(h) in chosen:
                    raise
                text.add(h)  # a text column (a run name, a phase) is no number: not a candidate
                continue
            table[h].append((st, v))
    return _from_columns({h: v for h, v in table.items() if h not in text}, source, kind, columns, step_col)


def read_csv_log(path: Path, columns: LogColumns = LogColumns()) -> Log:
    text = _text(path)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise LogError(f"{path}: empty file (expected a header row and logged rows)")
    reader = csv.reader(lines, delimiter=delimiter(path, lines[0]))
    header = [h.strip() for h in next(reader)]
    rows, where = [], []
    for k, row in enumerate(reader, start=2):
        rows.append({h: (row[i] if i < len(row) else "") for i, h in enumerate(header)})
        where.append(f"{path}: line {k}")
    if not rows:
        raise LogError(f"{path}: a header but no logged rows")
    return _rows_table(rows, header, str(path), "csv", columns, where)


def read_jsonl_log(path: Path, columns: LogColumns = LogColumns()) -> Log:
    rows, where, header = [], [], {}
    for k, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogError(f"{path}: line {k}: not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise LogError(f"{path}: line {k}: expected a JSON object, got {type(obj).__name__}")
        rows.append(obj)
        where.append(f"{path}: line {k}")
        header.update(dict.fromkeys(obj))
    if not rows:
        raise LogError(f"{path}: no JSON lines")
    return _rows_table(rows, list(header), str(path), "jsonl", columns, where)


def read_trainer_state(path: Path, columns: LogColumns = LogColumns()) -> Log:
    try:
        state = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise LogError(f"{path}: not JSON ({exc})") from None
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise LogError(f"{path}: no 'log_history' list (is it a Hugging Face Trainer trainer_state.json?)")
    # The entry Trainer adds when training ends (total_flos, the run's mean train_loss) is a
    # summary, not a logged step: its train_loss would be a second "training loss" column.
    history = [h for h in history if "total_flos" not in h]
    header: dict[str, None] = {}
    for h in history:
        header.update(dict.fromkeys(h))
    if not history:
        raise LogError(f"{path}: 'log_history' is empty (nothing was logged yet)")
    return _rows_table(history, list(header), str(path), "trainer_state", columns,
                       [f"{path}: log_history[{i}]" for i in range(len(history))])


def read_tensorboard(path: Path, columns: LogColumns = LogColumns()) -> Log:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # lazy: optional extra
    except ModuleNotFoundError as exc:
        err = missing_extra(exc, f"reading TensorBoard events ({path})")
        if err is None:
            raise
        raise err from None
    files = [path] if path.is_file() else sorted(p for p in path.rglob(f"{_TB_PREFIX}*") if p.is_file())
    if not files:
        raise LogError(f"{path}: no TensorBoard event files ({_TB_PREFIX}.*) in it")
    table: dict[str, list[tuple[float, float]]] = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0, "tensors": 0})  # 0: keep every event
        try:
            acc.Reload()
        except Exception as exc:  # noqa: BLE001 - the reader raises its own types for a damaged file
            raise LogError(f"{f}: unreadable TensorBoard event file ({type(exc).__name__}: {exc})") from None
        tags = acc.Tags()
        for tag in tags.get("scalars", []):
            table.setdefault(tag, []).extend((float(e.step), float(e.value)) for e in acc.Scalars(tag))
        for tag in tags.get("tensors", []):  # TF2-style summaries store scalars as 0-d tensors
            for e in acc.Tensors(tag):
                vals = e.tensor_proto.float_val or e.tensor_proto.double_val
                if len(vals) == 1:
                    table.setdefault(tag, []).append((float(e.step), float(vals[0])))
    if not table:
        raise LogError(f"{path}: the TensorBoard events hold no scalars")
    if columns.step is not None:
        raise LogError(f"{path}: --step-col {columns.step!r}: TensorBoard scalars carry their own steps")
    return _from_columns(table, str(path), "tensorboard", columns)


def _text(path: Path) -> str:
    # the one bounded reader: a FIFO or device is refused with its true kind, never read without end
    return read_text(path, "log", LogError, encoding="utf-8-sig")


def log_kind(path: Path) -> str:
    """Which reader a path takes; LogError naming it when none does."""
    if path.is_dir():
        if (path / TRAINER_STATE).is_file():
            return "trainer_state"
        if any(path.rglob(f"{_TB_PREFIX}*")):
            return "tensorboard"
        raise LogError(f"{path}: a folder with neither {TRAINER_STATE} nor TensorBoard event files ({_TB_PREFIX}.*)")
    if not path.exists():
        raise LogError(f"{path}: no such file")
    regular_file(path, "log", LogError)  # a FIFO or device: say what it is before guessing a format by name
    if path.name.startswith(_TB_PREFIX):
        return "tensorboard"
    if path.name.endswith(".json") and path.name != "metrics.json":
        return "trainer_state"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    if path.suffix.lower() in (".csv", ".tsv", ".tab", ".txt"):
        return "csv"
    raise LogError(f"{path}: unknown log format (expected .csv / .tsv, .jsonl, trainer_state.json or "
                   f"TensorBoard {_TB_PREFIX}.* files)")


def read_log(path: str | Path, columns: LogColumns = LogColumns()) -> Log:
    """Read any supported training log; the format is told by the name (see the module doc)."""
    p = Path(path)
    kind = log_kind(p)
    if kind == "trainer_state":
        return read_trainer_state(p / TRAINER_STATE if p.is_dir() else p, columns)
    if kind == "tensorboard":
        return read_tensorboard(p, columns)
    if kind == "jsonl":
        return read_jsonl_log(p, columns)
    return read_csv_log(p, columns)
