"""No module in src/ passes ~400 lines: a longer one holds more than one concept (split it by concept)."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "riverbed"
LIMIT = 400


def oversized(root: Path = SRC, limit: int = LIMIT) -> dict[str, int]:
    sizes = {str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(root.rglob("*.py"))}
    return {name: n for name, n in sizes.items() if n > limit}


def test_no_module_over_the_limit() -> None:
    found = oversized()
    assert not found, f"modules over {LIMIT} lines (split by concept): " + ", ".join(f"{k} ({v})" for k, v in found.items())


def test_the_check_sees_a_long_module(tmp_path: Path) -> None:
    (tmp_path / "short.py").write_text("x = 1\n")
    (tmp_path / "long.py").write_text("x = 1\n" * (LIMIT + 1))
    assert oversized(tmp_path) == {"long.py": LIMIT + 1}
