"""The package version: one constant, at the bottom layer, so that a module recording it (a merge
recipe, a report) never imports the ``riverbed`` package itself (see docs/architecture.md)."""

__version__ = "0.1.0"
