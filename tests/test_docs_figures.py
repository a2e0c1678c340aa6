"""tools/docs_figures.py: README blocks regenerated from the commands' output, and the CI check that diffs them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("docs_figures", ROOT / "tools" / "docs_figures.py")
docs_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(docs_figures)


def _demo(tmp_path: Path, loss: float) -> Path:
    run = tmp_path / "demo"
    run.mkdir()
    rows = [{"branch": "b150", "budget_steps": 150, "fork_step": 120, "tokens": 153600, "main_loss_at_fork": 2.2779,
             "main_loss_at_budget": 2.2536, "branch_loss": loss},
            {"branch": "b300", "budget_steps": 300, "fork_step": 240, "tokens": 307200, "main_loss_at_fork": None,
             "main_loss_at_budget": None, "branch_loss": 2.0289}]
    (run / "demo.json").write_text(json.dumps({"rows": rows, "tree_tokens": 1_690_000, "scratch_tokens": 2_300_000}))
    return run


def test_the_demo_block_is_the_demo_rows_and_check_fails_on_any_difference(tmp_path, capsys):
    block = docs_figures.demo_block(_demo(tmp_path, 2.1837))
    assert "| 150 steps | 154K | 2.2779 | 2.2536 | 2.1837 | +0.0699 |" in block
    assert "| 300 steps | 307K | - | - | 2.0289 | - |" in block
    assert "The tree spent 1.69M tokens; the same 2 budgets as separate runs would spend 2.3M." in block
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- docs-figures:demo -->\nold\n<!-- /docs-figures:demo -->\ntail\n")
    assert docs_figures.check("demo", block, readme) == 1
    assert "regenerate: make docs-figures" in capsys.readouterr().out
    docs_figures.update("demo", block, readme)
    assert docs_figures.check("demo", block, readme) == 0
    assert readme.read_text().endswith("<!-- /docs-figures:demo -->\ntail\n")
    (tmp_path / "b").mkdir()
    other = docs_figures.demo_block(_demo(tmp_path / "b", 2.1838))
    assert docs_figures.check("demo", other, readme) == 1  # one digit off is a failure


def test_the_readme_has_every_generated_block():
    for name in ("demo", "predict-check"):
        assert docs_figures.current(name).strip() not in ("", "(generated)"), name
