"""The one exception type users see.

Anything the user can fix (a config key, a file, a tensor, a CLI flag) raises a
:class:`RiverbedError` whose message names the culprit. The CLI turns it into a one-line
message and exit code 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RiverbedError(Exception):
    """A user-facing error: bad input, a missing or corrupt file, an impossible request."""


class ConfigError(RiverbedError, ValueError):
    """A configuration key or value is wrong. The message names the key and the value."""


class CheckpointError(RiverbedError):
    """A checkpoint is missing, truncated, corrupt or incompatible. The message names the file."""


class MergeError(RiverbedError):
    """Merge inputs disagree or cannot be read. The message names the tensor and files."""


class ScalingError(RiverbedError, ValueError):
    """Scaling-law input is unusable. The message names the offending rows or runs."""


class RunError(RiverbedError):
    """The run tree is inconsistent with the request (unknown branch, existing name, ...)."""


class RiverbedWarning(UserWarning):
    """A request that is allowed but probably not meant (the CLI prints it as ``riverbed: warning: ...``)."""


class OutputExistsError(RiverbedError, FileExistsError):
    """An output path exists (or appeared while the output was written) and may not be replaced.
    The message names the path and, when an output was finished, where it was kept instead."""


class LockedError(RunError):
    """Another live process is writing the same branch. The message names it (pid, host, start)."""


class ReportError(RiverbedError):
    """A report cannot be written as asked (output path, runs to compare). The message names it."""


class DiskFullError(RiverbedError, OSError):
    """The device ran out of space (or quota) while riverbed wrote. The message names the output;
    nothing half-written is visible, so the same command resumes once space is freed."""
