"""Generic file I/O at the bottom of the package: atomic writes and directories (``atomic``),
strict JSON (``strict_json``) and exclusive lock files (``lock``). Nothing here knows a run tree."""
