"""The report page: one self-contained HTML file with every figure embedded, the settings
and final metrics as tables, and interactive 3-D PCA plots (plotly, its JavaScript inlined,
so the page opens offline)."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .. import __version__, plots
from ..pca import PCA
from ..runs import Run
from .figures import ReportError, ReportFigure


# --------------------------------------------------------------------------- PCA (plotly)
@dataclass
class Projection:
    """A 3-D PCA of some vectors: coordinates (n, 3) and the variance each axis explains."""

    title: str
    coords: np.ndarray
    explained: np.ndarray
    note: str = ""


def project(vectors: np.ndarray, title: str) -> Projection:
    """PCA of ``vectors`` (n, d) to 3-D (padded with zeros where n or d is below 3)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    k = min(3, vectors.shape[0], vectors.shape[1])
    if k < 1 or vectors.shape[0] < 2:
        raise ReportError(f"{title}: need at least 2 points for a PCA, got {vectors.shape[0]}")
    pca = PCA(k).fit(vectors)
    coords = np.zeros((len(vectors), 3))
    coords[:, :k] = pca.transform(vectors)
    explained = np.zeros(3)
    explained[:k] = pca.explained_variance_ratio_
    note = "" if k == 3 else f"only {k} dimension(s): the other axes are zero"
    return Projection(title, coords, explained, note)


def pca_figure_html(proj: Projection, labels: np.ndarray, predicted: np.ndarray,
                    indices: np.ndarray, classes: Sequence[int], div_id: str,
                    names: Mapping[int, str] | None = None, title: str = "MNIST") -> str:
    """An interactive plotly 3-D scatter (a ``<div>`` and its script), one trace per class
    (``names``: label -> class name; ``title``: the dataset, for the hover text)."""
    import plotly.graph_objects as go

    def label(c: int) -> str:
        return str(c) if names is None else (names.get(int(c)) or str(c))

    def name(c: int) -> str:  # "digit 3" for digits, the class name otherwise ("Trouser")
        return f"digit {c}" if label(c) == str(c) else label(c)

    fig = go.Figure()
    for c in classes:
        mask = labels == c
        if not mask.any():
            continue
        text = [f"{title} test image {i}: {name(c)}, predicted {label(p)}"
                for i, p in zip(indices[mask], predicted[mask], strict=True)]
        fig.add_trace(go.Scatter3d(
            x=np.round(proj.coords[mask, 0], 4), y=np.round(proj.coords[mask, 1], 4),
            z=np.round(proj.coords[mask, 2], 4), mode="markers", name=name(c),
            marker={"size": 2.5, "color": plots.DIGIT_COLORS[int(c) % 10], "opacity": 0.85},
            hovertext=text, hoverinfo="text"))
    axis = [f"PC{i + 1} ({100 * proj.explained[i]:.1f}%)" for i in range(3)]
    fig.update_layout(
        title={"text": proj.title, "x": 0.5}, height=620, margin={"l": 0, "r": 0, "t": 50, "b": 0},
        legend={"itemsizing": "constant", "title": {"text": "click to hide/show"}},
        scene={"xaxis": {"title": {"text": axis[0]}}, "yaxis": {"title": {"text": axis[1]}},
               "zaxis": {"title": {"text": axis[2]}}, "aspectmode": "cube",
               "camera": {"eye": {"x": 1.55, "y": 1.55, "z": 1.05}}},
        paper_bgcolor="white", font={"family": "system-ui, sans-serif", "size": 12})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def plotly_js() -> str:
    """The plotly.js library itself, to inline in the page so that it opens offline."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


# --------------------------------------------------------------------------- tables
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    """A setting or metric for people: numbers to 4 significant digits, yes/no, none."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "none"
    if value is None:
        return "none"
    if value == "":
        return "(not set)"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _acc(value: float) -> str:
    """An accuracy (or other 0-1 score) to four decimals; "n/a" for NaN."""
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _last_finite(values: Sequence[float]) -> float:
    finite = [v for v in values if _is_number(v) and math.isfinite(v)]
    return float(finite[-1]) if finite else float("nan")


def metrics_rows(metrics: Mapping[str, Any], recomputed: float | None = None) -> list[tuple[str, str]]:
    """Final metrics of a run as ``(name, value)`` rows for a table."""
    h = metrics["history"]
    recorded = metrics["test_accuracy"]
    rows = [("test accuracy", "n/a (no test split)" if recorded is None else f"{recorded:.4f}")]
    if recomputed is not None and (recorded is None or abs(recomputed - recorded) > 1e-9):
        rows.append(("test accuracy on the data used for this report", f"{recomputed:.4f}"))
    test = metrics.get("test")
    if isinstance(test, Mapping) and _is_number(test.get("macro_f1")):
        rows.append(("macro F1 (test)", f"{test['macro_f1']:.4f}"))
    rows += [
        ("epochs", str(metrics["epochs"])),
        ("best epoch (by " + ("validation accuracy" if h.get("monitor") == "val_accuracy"
                             else "validation loss") + ")", _fmt(h.get("best_epoch"))),
        ("stopped early", _fmt(h.get("stopped_early", False))),
        ("final training loss", _fmt(_last_finite(h["loss"]))),
        ("final training accuracy", _acc(_last_finite(h["train_accuracy"]))),
        ("final validation loss", _fmt(_last_finite(h["val_loss"]))),
        ("final validation accuracy", _acc(_last_finite(h["val_accuracy"]))),
        ("validation accuracy at the best epoch", _acc(at_best(h, "val_accuracy"))),
    ]
    if "train_seconds" in metrics:
        rows.append(("training time (s)", f"{metrics['train_seconds']:.1f}"))
    if "wall_seconds" in metrics:
        rows.append(("wall time of fit (s)", f"{metrics['wall_seconds']:.1f}"))
    model = metrics.get("model")
    if isinstance(model, Mapping):
        if "parameters" in model:
            rows.append(("parameters", f"{model['parameters']:,}" if isinstance(model["parameters"], int)
                         else _fmt(model["parameters"])))
        if isinstance(model.get("layers"), list):
            rows.append(("layers", " \u2192 ".join(str(layer) for layer in model["layers"])))
        elif "layers" in model:
            rows.append(("layers", _fmt(model["layers"])))
    ds = metrics.get("dataset")
    if isinstance(ds, Mapping):
        for key, label in (("title", "dataset"), ("source", "data source"),
                           ("verified", "the catalogue's files (checksums)"),
                           ("n_train_used", "training images"), ("n_valid", "validation images"),
                           ("n_test", "test images in the file"), ("digits", "digits")):
            if key in ds:
                rows.append((label, _fmt(ds[key])))
    env = metrics.get("environment")
    if isinstance(env, Mapping):
        rows.append(("environment", ", ".join(f"{k} {v}" for k, v in env.items())))
    return rows


def _table(rows: Sequence[tuple[str, str]], caption: str) -> str:
    body = "\n".join(f"<tr><th scope=\"row\">{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                     for k, v in rows)
    return f"<table>\n<caption>{html.escape(caption)}</caption>\n{body}\n</table>"


def _img(fig: ReportFigure) -> str:
    width, height = plots.png_size(fig.png)
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
            f'alt="{html.escape(fig.heading)}">')


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0;
       background: #fafafa; line-height: 1.45; }
header { background: #1f6fb4; color: white; padding: 1.2em 2em; }
header h1 { margin: 0 0 .2em 0; font-size: 1.6em; }
header p { margin: 0; opacity: .9; }
nav { padding: .6em 2em; background: #eef3f8; border-bottom: 1px solid #d5dde6; display: flex;
      flex-wrap: wrap; gap: .3em 1.4em; }
nav a { color: #1f6fb4; text-decoration: none; white-space: nowrap; }
main { padding: 0 2em 3em 2em; max-width: 1200px; }
section { background: white; border: 1px solid #e3e3e3; border-radius: 6px; margin: 1.4em 0;
          padding: 1em 1.4em; }
section h2 { margin-top: 0; font-size: 1.25em; }
.caption { color: #555; font-size: .92em; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0; }
.tables { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
table { border-collapse: collapse; font-size: .92em; }
caption { text-align: left; font-weight: bold; padding-bottom: .4em; }
th, td { text-align: left; padding: .25em .8em; border-bottom: 1px solid #eee; vertical-align: top; }
th { font-weight: 600; color: #444; }
td { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; word-break: break-word;
     max-width: 38em; }
.note { background: #fff6e0; border-left: 4px solid #e8731a; padding: .4em .8em; }
"""


def render_html(run: Run, figures: Sequence[ReportFigure], projections_html: Sequence[str],
                notes: Sequence[str], recomputed: float | None, pca_caption: str) -> str:
    """The whole self-contained page (plotly.js inlined once, images as data URIs)."""
    title = f"digitnet run report: {run.name}"
    sections = [("summary", "Configuration and final metrics")]
    sections += [(f.anchor, f.heading) for f in figures]
    sections.append(("pca", "3-D PCA of the test set"))
    nav = "".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h in sections)
    config_rows = [(f"{table}.{k}", _fmt(v)) for table, values in run.config.items()
                   if isinstance(values, Mapping) for k, v in values.items()]
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{CSS}</style>",
        f'<script type="text/javascript">{plotly_js()}</script>',
        "</head>", "<body>",
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(str(run.path))} &middot; test accuracy "
        f"{_acc(recomputed if recomputed is not None else float('nan'))} &middot; generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by digitnet {__version__}</p></header>",
        f"<nav>{nav}</nav>", "<main>",
    ]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    parts.append('<section id="summary"><h2>Configuration and final metrics</h2><div class="tables">'
                 + _table(metrics_rows(run.metrics, recomputed), "Final metrics")
                 + _table(config_rows, "Run spec (config.json)") + "</div></section>")
    for fig in figures:
        parts.append(f'<section id="{fig.anchor}"><h2>{html.escape(fig.heading)}</h2>'
                     f'<p class="caption">{html.escape(fig.caption)}</p>{_img(fig)}{fig.extra}'
                     f'<p class="caption">File: {html.escape(fig.filename)}</p></section>')
    parts.append('<section id="pca"><h2>3-D PCA of the test set</h2>'
                 f'<p class="caption">{html.escape(pca_caption)}</p>'
                 + "".join(f'<div class="pca">{p}</div>' for p in projections_html) + "</section>")
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"




def at_best(history: Mapping[str, Any], key: str) -> float:
    """``history[key]`` at the best epoch (the one ``monitor`` chose); NaN if unknown."""
    best, values = history.get("best_epoch"), history.get(key) or []
    if not isinstance(best, int) or not 1 <= best <= len(values):
        return float("nan")
    value = values[best - 1]
    return float(value) if isinstance(value, (int, float)) else float("nan")
