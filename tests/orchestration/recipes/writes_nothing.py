"""A decay command that succeeds but writes no checkpoint."""

import pathlib
import sys

(pathlib.Path(sys.argv[3]) / "notes.txt").write_text("forgot to save\n")
