"""A decay command that (wrongly) saves into the fork checkpoint instead of OUT."""

import pathlib
import sys

target = pathlib.Path(sys.argv[1]) / "config.json"
target.write_text(target.read_text() + " ")
