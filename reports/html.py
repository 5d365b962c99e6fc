"""Self-contained HTML pages: figures embedded as base64 PNG, tables as escaped HTML, no scripts, no CDN."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d1d1f;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#666}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f5f5f7}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;margin:.6rem 0;border:1px solid #eee}
.alert{background:#fde8e8;border-left:4px solid #c81e1e;padding:.3rem .6rem;margin:.2rem 0}
.warn{background:#fdf6e3;border-left:4px solid #c27803;padding:.3rem .6rem;margin:.2rem 0}
.ok{background:#e8f5e9;border-left:4px solid #2e7d32;padding:.3rem .6rem;margin:.2rem 0}
code{background:#f5f5f7;padding:0 .2rem}
"""


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: Sequence[str] = ()
    figures: Sequence[tuple[str, bytes]] = ()  # (alt text, PNG bytes)
    tables: Sequence[tuple[str, pd.DataFrame]] = ()  # (caption, table)
    items: Sequence[tuple[str, str]] = field(default=())  # (css class, text): alert-style list


def _table(caption: str, table: pd.DataFrame) -> str:
    body = table.to_html(escape=True, border=0, float_format=lambda v: f"{v:.4g}", na_rep="–")
    return f"<p><strong>{html.escape(caption)}</strong></p>{body}" if caption else body


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(subtitle)}</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in section.paragraphs)
        parts.extend(f"<div class='{html.escape(css)}'>{html.escape(text)}</div>" for css, text in section.items)
        for alt, png in section.figures:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>")
        parts.extend(_table(caption, table) for caption, table in section.tables)
    parts.append("</body></html>")
    return "\n".join(parts)
