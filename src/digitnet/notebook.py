"""How digitnet's objects show in a notebook: small HTML pieces written as plain strings.

``Classifier``, ``History`` and ``Run`` build their ``_repr_html_`` from these (the engine's
``Sequential`` writes its own table, since :mod:`digitnet.nn` imports nothing of digitnet).
Every value is escaped; nothing here imports anything beyond the standard library.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

STYLE = "border-collapse:collapse;font-size:0.9em"
CELL = "padding:2px 10px;text-align:left"


def fmt(value: Any) -> str:
    """A value as a short string: floats to 4 significant digits, NaN as an en dash."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None, *, caption: str = "") -> str:
    """An HTML table of ``rows`` (each a sequence of cells), with an optional header row."""
    head = "" if header is None else \
        "<thead><tr>" + "".join(f"<th style='{CELL}'>{html.escape(h)}</th>" for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td style='{CELL}'>{html.escape(fmt(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" if caption else ""
    return f"<table style='{STYLE}'>{cap}{head}<tbody>{body}</tbody></table>"


def png(data: bytes, alt: str) -> str:
    """PNG bytes as an inline ``<img>``, scaled down to the cell it sits in."""
    encoded = base64.b64encode(data).decode("ascii")
    return f"<img alt='{html.escape(alt)}' style='max-width:100%' src='data:image/png;base64,{encoded}'/>"


def section(title: str, *parts: str) -> str:
    """A titled block of HTML ``parts`` (already HTML)."""
    return f"<div><div><b>{html.escape(title)}</b></div>{''.join(parts)}</div>"
