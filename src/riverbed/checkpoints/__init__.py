"""Checkpoint I/O: safetensors for tensors, JSON for everything else, atomic writes."""

from riverbed.io.atomic import atomic_dir, atomic_path, write_json, write_text

__all__ = ["atomic_dir", "atomic_path", "write_json", "write_text"]
