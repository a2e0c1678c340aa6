"""The README's Python examples never change a reader's data: a block that opens an existing run only
reads it (no fake events, no edited records)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"
# Run methods that rewrite run.json or delete files (riverbed.runs.run.Run).
WRITES = ("record_event", "update_branch", "add_branch", "remove_branch", "delete_branch", "set_progress",
          "add_milestone", "finish_branch", "reconcile")


def test_examples_that_open_a_users_run_only_read_it():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    opened = [b for b in blocks if "Run.open(" in b]
    assert opened, "the README shows the Run API"
    for block in opened:
        code = "\n".join(line.split("#", 1)[0] for line in block.splitlines())
        called = [w for w in WRITES if re.search(rf"\.{w}\(", code)]
        assert not called, f"a README example writes into the reader's run: {called}\n{block}"
