"""A claims run's finished jobs kept in one JSON file as they end, so that a failed, killed or interrupted
run loses nothing: the same command with the same file runs only the jobs it does not hold yet.

The file is the ``--json`` document of ``riverbed claims`` (``{"size", "jobs": [...]}``, plus ``"claims"`` once
every job is in), rewritten atomically after each job, so ``riverbed claims --results FILE`` reads it at any
time. A job is identified by its whole spec (study, size, seed, model): results of other sizes or seeds in the
file are kept and left alone.

>>> store = SavedJobs("claims.json")                       # doctest: +SKIP
>>> todo = store.todo(jobs); ...; store.add(result)        # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riverbed.errors import ConfigError
from riverbed.io.atomic import write_text
from riverbed.io.input_files import read_text
from riverbed.io.strict_json import finite


def plain(x: Any) -> Any:
    """Strict JSON: non-finite floats become null (recursively), as ``riverbed claims --json`` prints them."""
    return finite(x, mark=False)


def job_key(job: dict[str, Any]) -> str:
    return json.dumps({"model": "tiny", **job}, sort_keys=True)


class SavedJobs:
    """The finished job results of ``path`` (read when it exists), added to and rewritten as jobs end;
    ``path`` None: kept in memory only (:meth:`keep_in_temp` writes them out when a run fails)."""

    def __init__(self, path: str | os.PathLike[str] | None, size: str = "full") -> None:
        from riverbed.claims.runner import saved_results  # the one check of a saved document

        self.path, self.size = (None if path is None else Path(path)), size
        self.done: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            try:
                doc = json.loads(read_text(self.path, "--save"))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise ConfigError(f"--save {self.path}: exists and is not valid JSON ({exc}); give a new file") from None
            for r in saved_results(doc, f"--save {self.path}"):
                self.done[job_key(r["job"])] = r

    def todo(self, jobs: Sequence[Any]) -> list[Any]:
        """The jobs (riverbed.claims.Job) the file does not hold a result of, in order."""
        return [j for j in jobs if job_key(j.to_json()) not in self.done]

    def add(self, result: dict[str, Any]) -> None:
        self.done[job_key(result["job"])] = result
        self.write()

    def results(self, jobs: Sequence[Any]) -> list[dict[str, Any]]:
        """The results of ``jobs``, in their order (every one must be held)."""
        return [self.done[job_key(j.to_json())] for j in jobs]

    def write(self, extra: dict[str, Any] | None = None) -> None:
        if self.path is not None:
            doc = {**(extra or {}), "size": self.size, "jobs": list(self.done.values())}
            write_text(self.path, json.dumps(plain(doc), indent=2, allow_nan=False) + "\n")

    def keep_in_temp(self) -> Path | None:
        """A run without a file that failed: its finished jobs written to a new file in the temporary
        directory, so they are not lost (None when there are none)."""
        if not self.done:
            return None
        fd, name = tempfile.mkstemp(prefix="riverbed-claims-", suffix=".json")
        os.close(fd)
        self.path = Path(name)
        self.write()
        return self.path
