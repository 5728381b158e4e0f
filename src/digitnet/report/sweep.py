"""The sweep page: one self-contained ``sweep.html`` with a parallel-coordinates plot of the
trials (one axis per varied setting, then the score; plotly, its JavaScript inlined so the
page opens offline) and the table of trials.

It draws plain data (see :func:`digitnet.sweep.sweep_page_data`) and knows nothing of Ray.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_bytes
from .page import CSS, plotly_js


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _dimension(param: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One plotly ``parcoords`` axis for a varied setting: choices at 0..k-1 with their labels,
    a log-uniform range on a log10 axis labelled in the setting's own units."""
    name, kind = param["name"], param["kind"]
    raw = [t["params"].get(name) for t in trials]
    if kind == "choices":
        labels = list(param["values"])
        top = max(len(labels) - 1, 1)
        return {"label": name, "values": [labels.index(v) for v in raw], "tickvals": list(range(len(labels))),
                "ticktext": labels, "range": [0, top]}
    low, high = param["values"]
    if kind == "log_range":
        lo, hi = math.log10(low), math.log10(high)
        ticks = [lo + (hi - lo) * i / 4 for i in range(5)]
        return {"label": f"{name} (log)", "values": [math.log10(v) for v in raw], "range": [lo, hi],
                "tickvals": ticks, "ticktext": [f"{10 ** t:.3g}" for t in ticks]}
    return {"label": name, "values": raw, "range": [low, high]}


def parallel_coordinates_html(data: Mapping[str, Any], div_id: str = "parcoords") -> str:
    """The plot (a ``<div>`` and its script) of the trials that have a score, coloured by it."""
    import plotly.graph_objects as go

    trials = [t for t in data["trials"] if _number(t["score"])]
    if not trials:
        return '<p class="note">No trial has a score yet, so there is nothing to plot.</p>'
    dims = [_dimension(p, trials) for p in data["params"]]
    epochs = [t["epochs"] for t in trials]
    if len(set(epochs)) > 1:  # some trials were stopped early
        dims.append({"label": "epochs", "values": epochs})
    scores = [t["score"] for t in trials]
    dims.append({"label": data["metric"], "values": scores})
    fig = go.Figure(go.Parcoords(
        line={"color": scores, "colorscale": "Viridis", "reversescale": data["mode"] == "min",
              "showscale": True, "colorbar": {"title": {"text": data["metric"]}}},
        dimensions=dims))
    fig.update_layout(height=520, margin={"l": 70, "r": 70, "t": 60, "b": 30}, paper_bgcolor="white",
                      font={"family": "system-ui, sans-serif", "size": 12})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def trials_table_html(data: Mapping[str, Any]) -> str:
    names = [p["name"] for p in data["params"]]
    head = ["trial", *names, data["metric"], "epochs", "seconds", "status", "error"]
    rows = []
    for t in data["trials"]:
        params = [f"{v:.4g}" if isinstance(v, float) else v for v in (t["params"].get(n) for n in names)]
        cells = [t["trial"], *params, _cell(t["score"]), t["epochs"],
                 _cell(t["seconds"], 1), t["status"], t["error"] or ""]
        rows.append("<tr>" + "".join(f"<td>{html.escape(_cell(c) if not isinstance(c, str) else c)}</td>"
                                     for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def render_sweep_page(data: Mapping[str, Any]) -> str:
    """The whole page: summary, search space, the plot, the table of trials."""
    best = data.get("best")
    if best:
        test = "n/a" if best["test_accuracy"] is None else f"{best['test_accuracy']:.4f}"
        summary = (f"Best trial <b>{html.escape(best['trial'])}</b>: {html.escape(data['metric'])} "
                   f"{best['score']:.4f} (chosen on validation), test accuracy {test}. Its spec: "
                   f"<code>{html.escape(best['config'])}</code>, replayed by <code>digitnet train "
                   f"--config</code>.")
    else:
        summary = "No trial has finished."
    space = "".join(f"<tr><td>{html.escape(p['name'])}</td><td>{html.escape(p['describe'])}</td></tr>"
                    for p in data["params"])
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(data['title'])}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{CSS}</style>", f'<script type="text/javascript">{plotly_js()}</script>',
        "</head>", "<body>",
        f"<header><h1>{html.escape(data['title'])}</h1><p>{html.escape(data['subtitle'])} &middot; "
        f"generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by digitnet {__version__}</p>"
        "</header>",
        "<main>",
        f'<section id="summary"><h2>Summary</h2><p>{summary}</p><table><caption>What was varied</caption>'
        f"{space}</table></section>",
        '<section id="plot"><h2>Parallel coordinates</h2><p class="caption">One line per trial with a '
        "score, coloured by it; drag along an axis to pick out a range.</p>"
        f"{parallel_coordinates_html(data)}</section>",
        f'<section id="trials"><h2>Trials</h2>{trials_table_html(data)}</section>',
        "</main>", "</body>", "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_sweep_page(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write :func:`render_sweep_page` to ``path`` atomically; returns the path."""
    return write_bytes(path, render_sweep_page(data).encode("utf-8"))
