"""A self-contained HTML page: inline styles, images as ``data:`` URIs, no script, nothing fetched.

The page declares ``Content-Security-Policy: default-src 'none'`` (images only from ``data:``,
styles only inline), so even a reader's browser refuses to load anything from elsewhere. Every
string that comes from a run (branch names, config values, event details) is escaped.

>>> page = Page("run demo")
>>> page.add_table("branches", ["name"], [["main <b>"]])
>>> "main &lt;b&gt;" in page.render() and "default-src 'none'" in page.render()
True
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riverbed.errors import ReportError

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
#: Marks a page riverbed wrote, so a later report may replace it and never a page of the user's.
GENERATOR = '<meta name="generator" content="riverbed">'


def is_report_page(out: Path) -> bool:
    """Whether ``out`` is an existing page riverbed wrote (its head carries the generator tag)."""
    try:
        with open(out, encoding="utf-8", errors="replace") as fh:
            return GENERATOR in fh.read(4096)
    except OSError:
        return False


def check_page_out(out: Path, flag: str) -> None:
    """Refuse an output that is not an .html file, is a directory, or is an existing page that
    riverbed did not write (nothing a user had is replaced); errors name ``flag``."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"{flag} {out}: a report is an .html file")
    if out.is_dir():
        raise ReportError(f"{flag} {out} is a directory; name the .html file to write")
    if out.exists():
        try:
            with open(out, encoding="utf-8", errors="replace") as fh:
                head = fh.read(4096)
        except OSError as exc:
            raise ReportError(f"{flag} {out}: cannot read the existing file ({exc.strerror})") from None
        if GENERATOR not in head:
            raise ReportError(f"{flag} {out}: exists and is not a riverbed report; refusing to replace it "
                              "(choose another path)")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.2rem 1.5rem 3rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
p.sub, p.note { color: #555; margin-top: 0.2rem; }
figure { margin: 0.8rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f5f5f7; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f5f5f7; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
nav a { margin-right: 0.9rem; }
details summary { cursor: pointer; color: #333; margin: 0.4rem 0; }
caption { caption-side: top; text-align: left; color: #555; font-size: 0.9rem; padding-bottom: 0.2rem; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


@dataclass
class Page:
    """An HTML page built section by section; ``render()`` returns the whole document."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    toc: list[tuple[str, str]] = field(default_factory=list)

    def add_heading(self, text: str) -> None:
        anchor = f"s{len(self.toc)}"
        self.toc.append((anchor, text))
        self.parts.append(f'<h2 id="{anchor}">{_e(text)}</h2>')

    def add_note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{_e(text)}</p>')

    def add_image(self, png: bytes, alt: str, caption: str = "") -> None:
        """An inline PNG (base64 ``data:`` URI)."""
        b64 = base64.b64encode(png).decode("ascii")
        cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{b64}">{cap}</figure>')

    def add_table(self, caption: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        head = "".join(f"<th>{_e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
        cap = f"<caption>{_e(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def add_pre(self, obj: Any, summary: str | None = None) -> None:
        """Preformatted text (an object as JSON); folded under ``summary`` when one is given."""
        text = obj if isinstance(obj, str) else json.dumps(obj, indent=2, sort_keys=True, default=str)
        pre = f"<pre>{_e(text)}</pre>"
        # <details> folds without any script (the page has none).
        self.parts.append(f"<details><summary>{_e(summary)}</summary>{pre}</details>" if summary else pre)

    def render(self) -> str:
        nav = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in self.toc)
        sub = f'<p class="sub">{_e(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">' + GENERATOR +
            '<link rel="icon" href="data:,">'  # no favicon request either
            f"<title>{_e(self.title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{_e(self.title)}</h1>{sub}<nav>{nav}</nav>" + "\n".join(self.parts) + "</body></html>\n"
        )
