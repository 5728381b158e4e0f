"""Look at a training run: PNG figures and one self-contained ``report.html``.

:func:`write_report` reads a run directory written by ``digitnet train``
(``model.npz``, ``config.json``, ``metrics.json``), runs the model on the MNIST test
images of the digits it knows, and writes into the same directory:

====================== =========================================================
``history.png``        loss and accuracy per epoch, training and validation
``confusion.png``      the confusion matrix as an annotated heatmap
``precision_recall.png`` per-class precision and recall bars
``mistakes.png``       the most confidently wrong test digits
``samples.png``        sample test digits per class
``weights.png``        the first layer's weights, one 28x28 image per unit
``report.html``        all of the above embedded (base64), the configuration and final
                       metrics as tables, and interactive 3-D PCA plots (plotly, its
                       JavaScript included) of the test inputs and of the last hidden
                       layer's activations; it opens offline
====================== =========================================================

:func:`compare_runs` overlays several runs' validation curves and tabulates their
final metrics. A missing or malformed file is a :class:`ReportError` that says which
file and what is wrong.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, plots
from .atomic import write_bytes
from .classifier import Classifier
from .data.datasets import load_mnist
from .errors import DigitnetError
from .metrics import classification_report
from .pca import PCA

HISTORY_KEYS = ("loss", "train_accuracy", "val_loss", "val_accuracy")
RUN_FILES = "a run directory written by `digitnet train` holds model.npz, config.json and metrics.json"


class ReportError(DigitnetError, ValueError):
    """A run directory cannot be reported on: a file is missing or malformed."""


# --------------------------------------------------------------------------- reading a run
def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a missing, unreadable or non-object file is a ReportError."""
    if not path.is_file():
        raise ReportError(f"{path}: no such file; {RUN_FILES}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a text file (expected JSON)") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                          f"column {exc.colno}); re-run `digitnet train` to write it again") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_metrics(metrics: Mapping[str, Any], source: str | Path = "metrics.json") -> dict[str, Any]:
    """Check the parts of ``metrics.json`` the report uses; return it as a dict.

    Needs ``test_accuracy`` (a number in [0, 1]), ``epochs`` (a positive integer) and
    ``history`` with equally long lists of numbers ``loss``, ``train_accuracy``,
    ``val_loss``, ``val_accuracy`` (NaN where there was no validation set).
    """
    def bad(problem: str) -> ReportError:
        return ReportError(f"{source}: malformed metrics: {problem}")

    if not isinstance(metrics, Mapping):
        raise bad(f"expected a JSON object, found {type(metrics).__name__}")
    acc = metrics.get("test_accuracy")
    if acc is None:
        raise bad("'test_accuracy' is missing")
    if not _is_number(acc) or not 0.0 <= acc <= 1.0:
        raise bad(f"'test_accuracy' must be a number between 0 and 1, got {acc!r}")
    epochs = metrics.get("epochs")
    if epochs is None:
        raise bad("'epochs' is missing")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise bad(f"'epochs' must be a positive integer, got {epochs!r}")
    history = metrics.get("history")
    if history is None:
        raise bad("'history' (the per-epoch record) is missing")
    if not isinstance(history, Mapping):
        raise bad(f"'history' must be an object of per-epoch lists, got {type(history).__name__}")
    length = None
    for key in (*HISTORY_KEYS, "epoch"):
        values = history.get(key)
        if values is None and key == "epoch":
            continue
        if values is None:
            raise bad(f"'history.{key}' is missing")
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise bad(f"'history.{key}' must be a list of numbers")
        if length is None:
            length = len(values)
            if length == 0:
                raise bad(f"'history.{key}' is empty: the run recorded no epoch")
        elif len(values) != length:
            raise bad(f"'history.{key}' has {len(values)} values but 'history.loss' has {length}")
    best = history.get("best_epoch")
    if best is not None and (not isinstance(best, int) or isinstance(best, bool)):
        raise bad(f"'history.best_epoch' must be an integer or null, got {best!r}")
    for key in ("train_seconds", "wall_seconds"):
        if key in metrics and not _is_number(metrics[key]):
            raise bad(f"'{key}' must be a number, got {metrics[key]!r}")
    return dict(metrics)


@dataclass
class Run:
    """A run directory's contents: settings, recorded metrics, and (optionally) the model."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    classifier: Classifier | None = None

    @property
    def name(self) -> str:
        return self.path.resolve().name or str(self.path)


def load_run(run_dir: str | Path, *, model: bool = True) -> Run:
    """Read and validate ``config.json``, ``metrics.json`` and (with ``model``) ``model.npz``."""
    path = Path(run_dir)
    if not path.exists():
        raise ReportError(f"{path}: no such run directory")
    if not path.is_dir():
        raise ReportError(f"{path}: not a directory; {RUN_FILES}")
    metrics_path = path / "metrics.json"
    metrics = validate_metrics(read_json_object(metrics_path), metrics_path)
    config = read_json_object(path / "config.json")
    clf = Classifier.load(path / "model.npz") if model else None
    return Run(path, config, metrics, clf)


def load_test_set(clf: Classifier, data_dir: str | Path | None, config: Mapping[str, Any] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNIST test images (n, 784) uint8, labels (n,) and their indices (n,) in the whole test
    set, restricted to ``clf.classes``.

    The data come from ``data_dir``, else from the run's own ``data_dir`` when it still
    exists, else from :func:`load_mnist`'s usual search (``$DIGITNET_DATA``, cache, fetch).
    """
    if data_dir is None and config and config.get("data_dir") and Path(config["data_dir"]).is_dir():
        data_dir = config["data_dir"]
    ds = load_mnist(data_dir, progress=False)
    index = np.arange(len(ds.y_test))
    if sorted(clf.classes) != list(range(10)):
        index = index[np.isin(ds.y_test, clf.classes)]
    if len(index) == 0:
        raise ReportError(f"the test data has no images of the model's digits {clf.classes}")
    return ds.x_test[index], ds.y_test[index], index


def confident_mistakes(y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray,
                       k: int = 25) -> np.ndarray:
    """Indices of up to ``k`` misclassified samples, most confident first (ties: lower index)."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    order = np.argsort(-np.asarray(confidence)[wrong], kind="stable")
    return wrong[order[:k]]


def subsample(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(n, k)`` of ``range(n)``, chosen without replacement."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def first_layer_weights(clf: Classifier) -> np.ndarray:
    """The ``(inputs, units)`` weight matrix of the network's first layer with weights."""
    for layer in clf.model.layers:
        weight = layer.params.get("weight")
        if weight is not None and weight.ndim == 2:
            return np.asarray(weight)
    raise ReportError("the model has no layer with weights")


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
                    indices: np.ndarray, classes: Sequence[int], div_id: str) -> str:
    """An interactive plotly 3-D scatter (a ``<div>`` and its script), one trace per digit."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for c in classes:
        mask = labels == c
        if not mask.any():
            continue
        text = [f"MNIST test image {i}: digit {c}, predicted {p}"
                for i, p in zip(indices[mask], predicted[mask], strict=True)]
        fig.add_trace(go.Scatter3d(
            x=np.round(proj.coords[mask, 0], 4), y=np.round(proj.coords[mask, 1], 4),
            z=np.round(proj.coords[mask, 2], 4), mode="markers", name=f"digit {c}",
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


# --------------------------------------------------------------------------- the report
@dataclass
class ReportFigure:
    """One PNG of the report: its file, section heading, id, caption and bytes."""

    filename: str
    heading: str
    anchor: str
    caption: str
    png: bytes = b""
    extra: str = ""  # HTML shown under the image


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    html: Path
    figures: list[Path] = field(default_factory=list)
    test_accuracy: float = float("nan")
    notes: list[str] = field(default_factory=list)


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
    val_acc = [v for v in h["val_accuracy"] if math.isfinite(v)]
    rows = [("test accuracy", f"{metrics['test_accuracy']:.4f}")]
    if recomputed is not None and abs(recomputed - metrics["test_accuracy"]) > 1e-9:
        rows.append(("test accuracy on the data used for this report", f"{recomputed:.4f}"))
    test = metrics.get("test")
    if isinstance(test, Mapping) and _is_number(test.get("macro_f1")):
        rows.append(("macro F1 (test)", f"{test['macro_f1']:.4f}"))
    rows += [
        ("epochs", str(metrics["epochs"])),
        ("best validation epoch", _fmt(h.get("best_epoch"))),
        ("stopped early", _fmt(h.get("stopped_early", False))),
        ("final training loss", _fmt(_last_finite(h["loss"]))),
        ("final training accuracy", _acc(_last_finite(h["train_accuracy"]))),
        ("final validation loss", _fmt(_last_finite(h["val_loss"]))),
        ("final validation accuracy", _acc(_last_finite(h["val_accuracy"]))),
        ("best validation accuracy", _acc(max(val_acc) if val_acc else float("nan"))),
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
        if "layers" in model:
            rows.append(("layers", _fmt(model["layers"])))
    ds = metrics.get("dataset")
    if isinstance(ds, Mapping):
        for key, label in (("source", "data source"), ("verified", "canonical MNIST (checksums)"),
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


def per_class_table(report: Mapping[str, Any]) -> str:
    """HTML table of per-class precision, recall, F1 and support (a classification report)."""
    head = "<tr><th>digit</th><th>precision</th><th>recall</th><th>F1</th><th>test images</th></tr>"
    body = "".join(f"<tr><th scope=\"row\">{html.escape(name)}</th><td>{s['precision']:.4f}</td>"
                   f"<td>{s['recall']:.4f}</td><td>{s['f1']:.4f}</td><td>{s['support']:,}</td></tr>"
                   for name, s in report["per_class"].items())
    return (f'<table class="per-class"><caption>Per-class scores (macro F1 {report["macro_f1"]:.4f})'
            f"</caption>{head}{body}</table>")


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
    config_rows = [(k, _fmt(v)) for k, v in run.config.items()]
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{CSS}</style>",
        f'<script type="text/javascript">{plotly_js()}</script>',
        "</head>", "<body>",
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(str(run.path))} &middot; test accuracy "
        f"{run.metrics['test_accuracy']:.4f} &middot; generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by digitnet {__version__}</p></header>",
        f"<nav>{nav}</nav>", "<main>",
    ]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    parts.append('<section id="summary"><h2>Configuration and final metrics</h2><div class="tables">'
                 + _table(metrics_rows(run.metrics, recomputed), "Final metrics")
                 + _table(config_rows, "Configuration (config.json)") + "</div></section>")
    for fig in figures:
        parts.append(f'<section id="{fig.anchor}"><h2>{html.escape(fig.heading)}</h2>'
                     f'<p class="caption">{html.escape(fig.caption)}</p>{_img(fig)}{fig.extra}'
                     f'<p class="caption">File: {html.escape(fig.filename)}</p></section>')
    parts.append('<section id="pca"><h2>3-D PCA of the test set</h2>'
                 f'<p class="caption">{html.escape(pca_caption)}</p>'
                 + "".join(f'<div class="pca">{p}</div>' for p in projections_html) + "</section>")
    parts += ["</main>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def write_report(run_dir: str | Path, *, data_dir: str | Path | None = None, mistakes: int = 25,
                 pca_points: int = 2000, per_class: int = 10) -> ReportResult:
    """Write the PNG figures and ``report.html`` of a run directory; return what was written."""
    run = load_run(run_dir)
    clf = run.classifier
    assert clf is not None
    x, y, index = load_test_set(clf, data_dir, run.config)
    classes = [int(c) for c in clf.classes]
    names = [str(c) for c in classes]
    pred, proba = clf.predict_with_proba(x)
    confidence = proba[np.arange(len(x)), np.searchsorted(classes, pred)]
    report = classification_report(np.searchsorted(classes, y), np.searchsorted(classes, pred),
                                   num_classes=len(classes), class_names=names)
    notes = []
    if abs(report["accuracy"] - run.metrics["test_accuracy"]) > 1e-9:
        notes.append(f"The test data used for this report give accuracy {report['accuracy']:.4f}, "
                     f"but metrics.json recorded {run.metrics['test_accuracy']:.4f}: the figures "
                     "below describe the data used now (another --data directory?).")

    wrong = confident_mistakes(y, pred, confidence, mistakes)
    n_wrong = int(np.count_nonzero(y != pred))
    per = report["per_class"]
    weights = first_layer_weights(clf)
    is_hidden = len(clf.hidden_activations(x[:1])) > 0
    figures = [
        ReportFigure("history.png", "Loss and accuracy per epoch", "history",
                     "Training values are means over each epoch while the weights change; "
                     "validation values are measured on the held-out images after each epoch."),
        ReportFigure("confusion.png", "Confusion matrix", "confusion",
                     f"Rows: true digit; columns: predicted digit; counts over {len(x):,} test "
                     "images. Colour shows the fraction of each true digit's images."),
        ReportFigure("precision_recall.png", "Precision and recall per class", "precision-recall",
                     "Precision: of the images predicted as a digit, the fraction that are it. "
                     "Recall: of the images of a digit, the fraction found.",
                     extra=per_class_table(report)),
        ReportFigure("mistakes.png", "Most confidently wrong test digits", "mistakes",
                     f"{n_wrong:,} of {len(x):,} test images are misclassified; shown: the "
                     f"{len(wrong)} the model was surest about, with the probability it gave its "
                     f"wrong answer. MNIST test indices, in order: "
                     f"{', '.join(str(int(i)) for i in index[wrong]) or 'none'}."),
        ReportFigure("samples.png", "Sample digits per class", "samples",
                     f"The first {per_class} test images of each digit."),
        ReportFigure("weights.png", "First-layer weights", "weights",
                     f"Each image is one {'hidden' if is_hidden else 'output'} unit's weights on "
                     "the 784 input pixels, laid out as the 28x28 image they look at."),
    ]
    drawn = {
        "history.png": lambda p: plots.plot_history(run.metrics["history"], p),
        "confusion.png": lambda p: plots.plot_confusion_matrix(report["confusion_matrix"], names, p),
        "precision_recall.png": lambda p: plots.plot_precision_recall(
            [per[n]["precision"] for n in names], [per[n]["recall"] for n in names], names, p),
        "mistakes.png": lambda p: plots.plot_confident_mistakes(
            x[wrong], y[wrong], pred[wrong], confidence[wrong], p,
            title=f"The {len(wrong)} most confidently wrong test digits" if len(wrong) else
            "Most confidently wrong test digits"),
        "samples.png": lambda p: plots.plot_class_samples(x, y, classes, p, per_class=per_class),
        "weights.png": lambda p: plots.plot_first_layer_weights(
            weights, p, title="First-layer weights, one image per "
            + ("hidden unit" if is_hidden else "output unit")),
    }
    out = run.path
    written = []
    for fig in figures:
        fig.png = drawn[fig.filename](out / fig.filename)
        written.append(out / fig.filename)

    idx = subsample(len(x), pca_points)
    xs, ys, ps = x[idx], y[idx], pred[idx]
    projections = [project(xs.astype(np.float64) / 255.0, "Test images (raw pixels)")]
    if is_hidden:
        hidden = clf.hidden_activations(xs)[-1]
        projections.append(project(hidden, f"Last hidden layer's activations ({hidden.shape[1]} units)"))
    else:
        notes.append("This network has no hidden layer, so there is no hidden-layer PCA.")
    pieces = [pca_figure_html(p, ys, ps, index[idx], classes, f"pca-{i}")
              for i, p in enumerate(projections)]
    pca_caption = (f"{len(idx):,} test images{' (a random subsample)' if len(idx) < len(x) else ''}, "
                   "projected on their first three principal components (axis titles: the share of "
                   "the variance each explains) and coloured by their true "
                   "digit. Drag to rotate, scroll to zoom, hover for a point's index and prediction, "
                   "click the legend to hide digits. Compare how far apart the classes lie in the "
                   "raw pixels and after the hidden layer.")
    for p in projections:
        if p.note:
            notes.append(f"{p.title}: {p.note}.")
    page = render_html(run, figures, pieces, notes, report["accuracy"], pca_caption)
    html_path = write_bytes(out / "report.html", page.encode("utf-8"))
    return ReportResult(html_path, written, report["accuracy"], notes)


# --------------------------------------------------------------------------- compare
COMPARE_COLUMNS = ("run", "hidden", "activation", "optimizer", "lr", "epochs", "best epoch",
                   "final val acc", "best val acc", "test acc", "train s")


def compare_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row of settings and final metrics per run, as JSON-able values (None: unknown).

    Keys: :data:`COMPARE_COLUMNS` (``"hidden"`` is a list of sizes, accuracies are
    fractions, ``"train s"`` seconds).
    """
    def number(value: Any) -> float | None:
        return float(value) if _is_number(value) and math.isfinite(value) else None

    rows = []
    for run in runs:
        c, m, h = run.config, run.metrics, run.metrics["history"]
        val = [v for v in h["val_accuracy"] if math.isfinite(v)]
        rows.append({
            "run": run.name,
            "hidden": c.get("hidden"),
            "activation": c.get("activation"),
            "optimizer": c.get("optimizer"),
            "lr": number(c.get("lr")),
            "epochs": m["epochs"],
            "best epoch": h.get("best_epoch"),
            "final val acc": number(_last_finite(h["val_accuracy"])),
            "best val acc": max(val) if val else None,
            "test acc": float(m["test_accuracy"]),
            "train s": number(m.get("train_seconds")),
        })
    return rows


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if column == "hidden" and isinstance(value, list):
        return "-".join(str(v) for v in value) if value else "none"
    if column.endswith("acc"):
        return f"{value:.4f}"
    if column == "lr":
        return f"{value:g}"
    if column == "train s":
        return f"{value:.1f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COMPARE_COLUMNS) -> str:
    """A plain-text table with aligned columns of :func:`compare_rows`."""
    cells = [[_cell(col, r.get(col)) for col in columns] for r in rows]
    widths = [max(len(col), *(len(row[i]) for row in cells)) for i, col in enumerate(columns)]
    out = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in out)


def compare_output_path(out: str | Path | None) -> Path:
    """Where ``compare`` writes its figure: ``out`` if it names a .png file, else
    ``out/compare.png`` (``out`` a directory; default the current directory)."""
    if out is None:
        return Path.cwd() / "compare.png"
    out = Path(out)
    return out if out.suffix.lower() == ".png" else out / "compare.png"


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None
                 ) -> tuple[list[dict[str, Any]], Path]:
    """Overlay the validation curves of ``run_dirs`` into one PNG; return table rows and its path."""
    if not run_dirs:
        raise ReportError("give at least one run directory to compare")
    runs = [load_run(d, model=False) for d in run_dirs]
    labels = [r.name for r in runs]
    if len(set(labels)) != len(labels):  # same directory names under different parents
        labels = [str(r.path) for r in runs]
    rows = compare_rows(runs)
    for row, label in zip(rows, labels, strict=True):
        row["run"] = label
    path = compare_output_path(out)
    plots.plot_validation_curves([(label, r.metrics["history"]) for label, r in
                                  zip(labels, runs, strict=True)], path,
                                 title=f"Validation curves of {len(runs)} run{'s' * (len(runs) > 1)}")
    return rows, path
