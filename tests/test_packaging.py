"""pyproject, Makefile and README agree on what the install needs (issue 10, packaging)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_torch_is_the_train_extra_not_a_core_dependency():
    core = [re.split(r"[<>=!~ \[]", d)[0] for d in PROJECT["dependencies"]]
    assert "torch" not in core
    assert set(core) == {"numpy", "scipy", "safetensors", "rich", "matplotlib", "tomli-w"}
    extras = PROJECT["optional-dependencies"]
    assert any(d.startswith("torch") for d in extras["train"])
    assert any(d.startswith("tensorboard") for d in extras["tensorboard"])


def test_python_floor_matches_tomllib():
    # riverbed imports tomllib (standard library from 3.11) at module top.
    assert PROJECT["requires-python"] == ">=3.11"
    assert "Programming Language :: Python :: 3.11" in PROJECT["classifiers"]
    assert not any("3.10" in c for c in PROJECT["classifiers"])


def test_make_installs_train_extra_with_torch_pinned_in_the_same_command():
    make = (ROOT / "Makefile").read_text()
    pin = re.search(r"^TORCH := (torch==\S+)$", make, re.M)
    assert pin, "Makefile must pin torch"
    assert re.search(r"pip install -q \$\(TORCH\) -e '\.\[train,dev\]'", make)


def test_readme_images_exist_in_the_repository():
    images = re.findall(r"!\[[^\]]+\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())
    assert images
    for rel in images:
        assert not rel.startswith(("http://", "https://", "/")), rel
        assert (ROOT / rel).is_file(), rel
