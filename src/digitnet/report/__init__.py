"""Look at training runs: PNG figures, one self-contained ``report.html``, and comparisons.

:func:`write_report` reads a run directory (:func:`digitnet.runs.load_run`), runs the model
on the MNIST test images of the digits it knows, and writes into the same directory:

====================== =========================================================
``history.png``        loss and accuracy per epoch, training and validation
``confusion.png``      the confusion matrix as an annotated heatmap
``precision_recall.png`` per-class precision and recall bars
``mistakes.png``       the most confidently wrong test digits
``samples.png``        sample test digits per class
``weights.png``        the first layer's weights, one 28x28 image per unit
``risk_coverage.png``  accuracy against the share of images answered, by confidence
``robustness.png``     accuracy under rotation, shift, scale, thickness, blur, noise,
                       occlusion and inversion (``robustness.json`` holds the numbers)
``report.html``        all of the above embedded (base64), the run spec and final
                       metrics as tables, and interactive 3-D PCA plots (plotly, its
                       JavaScript included) of the test inputs and of the last hidden
                       layer's activations; it opens offline
====================== =========================================================

The work is split by job: :mod:`.figures` (what each figure shows and draws),
:mod:`.page` (the HTML page and its PCA plots), :mod:`.compare` (several runs side by side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_bytes
from ..classifier import Classifier
from ..robustness import robustness
from ..runs import RunError, load_run, read_json_object, write_json
from .compare import COMPARE_COLUMNS, Comparison, compare_rows, compare_runs, format_table
from .figures import ReportError, ReportFigure, analyse, load_test_set, report_figures
from .page import pca_figure_html, plotly_js, project, render_html

__all__ = ["COMPARE_COLUMNS", "Comparison", "ReportError", "ReportFigure", "ReportResult", "compare_rows",
           "compare_runs", "format_table", "plotly_js", "write_report"]


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    html: Path
    figures: list[Path] = field(default_factory=list)
    test_accuracy: float = float("nan")
    notes: list[str] = field(default_factory=list)


def subsample(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``min(n, k)`` of ``range(n)``, chosen without replacement."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def measured_robustness(run_dir: Path, clf: Classifier, x: np.ndarray, y: np.ndarray) -> dict:
    """The run's ``robustness.json`` if it was measured on these test images, else measured now
    (and saved there)."""
    path = run_dir / "robustness.json"
    if path.is_file():
        try:
            saved = read_json_object(path)
            if saved.get("n_images") == len(x) and isinstance(saved.get("perturbations"), dict):
                return saved
        except RunError:
            pass  # a damaged file is measured again and rewritten
    results = robustness(clf.predict, x, y)
    write_json(path, results)
    return results


def write_report(run_dir: str | Path, *, data_dir: str | Path | None = None, mistakes: int = 25,
                 pca_points: int = 2000, per_class: int = 10, dataset: str | None = None) -> ReportResult:
    """Write the PNG figures and ``report.html`` of a run directory; return what was written.

    The figures are of the test images of ``dataset`` (default: the one the run trained on),
    labelled with its class names."""
    run = load_run(run_dir)
    clf = run.classifier
    assert clf is not None
    x, y, index = load_test_set(clf, data_dir, run.metrics.get("dataset"), dataset)
    a = analyse(clf, x, y, index, dataset)
    notes = []
    recorded = run.metrics["test_accuracy"]
    if recorded is not None and abs(a.report["accuracy"] - recorded) > 1e-9:
        notes.append(f"The test data used for this report give accuracy {a.report['accuracy']:.4f}, "
                     f"but metrics.json recorded {recorded:.4f}: the figures below describe the data "
                     "used now (another --data directory, or a seed's own test split?).")
    figures = report_figures(run, a, mistakes=mistakes, per_class=per_class,
                             robustness=measured_robustness(run.path, clf, x, y))
    for fig in figures:
        fig.png = fig.draw(run.path / fig.filename)

    idx = subsample(len(x), pca_points)
    projections = [project(x[idx].astype(np.float64) / 255.0, "Test images (raw pixels)")]
    hidden = clf.hidden_activations(x[idx])
    if hidden:
        units = hidden[-1].shape[1]
        projections.append(project(hidden[-1], f"Last hidden layer's activations ({units} units)"))
    else:
        notes.append("This network has no hidden layer, so there is no hidden-layer PCA.")
    pieces = [pca_figure_html(p, y[idx], a.predicted[idx], index[idx], a.classes, f"pca-{i}",
                              names=a.by_label, title=a.title)
              for i, p in enumerate(projections)]
    pca_caption = (f"{len(idx):,} test images{' (a random subsample)' if len(idx) < len(x) else ''}, "
                   "projected on their first three principal components (axis titles: the share of "
                   f"the variance each explains) and coloured by their true {a.kind}. Drag to rotate, "
                   "scroll to zoom, hover for a point's index and prediction, click the legend to hide "
                   "classes. "
                   "Compare how far apart the classes lie in the raw pixels and after the hidden layer.")
    notes += [f"{p.title}: {p.note}." for p in projections if p.note]
    page = render_html(run, figures, pieces, notes, a.report["accuracy"], pca_caption)
    html_path = write_bytes(run.path / "report.html", page.encode("utf-8"))
    return ReportResult(html_path, [run.path / f.filename for f in figures], a.report["accuracy"], notes)
