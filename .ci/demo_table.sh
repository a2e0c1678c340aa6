#!/usr/bin/env bash
# The README's demo table must be what `riverbed demo` prints: run the demo (about 3-4 minutes on
# 2 CPU cores; it fixes its own thread count) and diff the table against README.md's generated block.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
timeout 1200 .venv/bin/riverbed demo --out "$work/demo" --no-progress
.venv/bin/python tools/docs_figures.py check demo "$work/demo"
