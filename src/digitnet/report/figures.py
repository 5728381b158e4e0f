"""The report's figures: what each shows, its caption, and the function that draws it.

:func:`analyse` runs a model on the test images once; :func:`report_figures` turns that
into :class:`ReportFigure` objects, each carrying its own ``draw(path) -> png bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import plots
from ..classifier import Classifier
from ..data.datasets import CATALOGUE, load_dataset
from ..errors import DigitnetError
from ..metrics import classification_report
from ..runs import Run


class ReportError(DigitnetError, ValueError):
    """A run cannot be reported on (for example, the test data hold none of its digits)."""


@dataclass
class ReportFigure:
    """One PNG of the report: its file, section heading, anchor, caption, how it is drawn,
    and (once drawn) its bytes."""

    filename: str
    heading: str
    anchor: str
    caption: str
    draw: Callable[[Path], bytes]
    extra: str = ""  # HTML shown under the image
    png: bytes = b""


@dataclass
class Analysis:
    """A model run once over the test images of its digits: inputs uint8 ``(n, 784)``, labels,
    their indices in the whole test set, predictions, confidences and the classification
    report."""

    x: np.ndarray
    y: np.ndarray
    index: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    report: dict[str, Any]
    classes: list[int]
    class_names: list[str]
    dataset: str = "mnist"

    @property
    def names(self) -> list[str]:
        return list(self.class_names)

    @property
    def by_label(self) -> dict[int, str]:
        """Label -> class name."""
        return dict(zip(self.classes, self.class_names, strict=True))

    @property
    def kind(self) -> str:
        """What one class is, for labels: "digit", "fashion item", ..."""
        info = CATALOGUE.get(self.dataset)
        return info.noun if info is not None else "class"

    @property
    def title(self) -> str:
        info = CATALOGUE.get(self.dataset)
        return info.title if info is not None else self.dataset


def load_test_set(clf: Classifier, data_dir: str | Path | None, dataset: dict[str, Any] | None = None,
                  name: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test images (n, 784) uint8, labels (n,) and their indices (n,) in the whole test set of
    the dataset ``name`` (default: the model's own), restricted to ``clf.classes``.

    The data come from ``data_dir``, else from the run's own data directory (``dataset``,
    what ``metrics.json`` recorded) when it still exists and the dataset is the run's, else
    from :func:`~digitnet.data.datasets.load_dataset`'s usual search (cache, fetch).
    """
    name = name or clf.dataset
    recorded = (dataset or {}).get("data_dir")
    if data_dir is None and recorded and Path(recorded).is_dir() and name == clf.dataset:
        data_dir = recorded
    ds = load_dataset(name, data_dir, progress=False)
    index = np.arange(len(ds.y_test))
    if sorted(clf.classes) != list(range(len(ds.class_names))):
        index = index[np.isin(ds.y_test, clf.classes)]
    if len(index) == 0:
        raise ReportError(f"the {name} test data has no images of the model's classes {clf.classes}")
    return ds.x_test[index], ds.y_test[index], index


def analyse(clf: Classifier, x: np.ndarray, y: np.ndarray, index: np.ndarray,
            dataset: str | None = None) -> Analysis:
    """Run ``clf`` once over test images ``x`` (n, 784) with labels ``y`` (n,)."""
    classes = [int(c) for c in clf.classes]
    predicted, proba = clf.predict_with_proba(x)
    confidence = proba[np.arange(len(x)), np.searchsorted(classes, predicted)]
    report = classification_report(np.searchsorted(classes, y), np.searchsorted(classes, predicted),
                                   num_classes=len(classes), class_names=clf.class_names)
    return Analysis(x, y, index, predicted, confidence, report, classes, clf.class_names,
                    dataset or clf.dataset)


def confident_mistakes(y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray,
                       k: int = 25) -> np.ndarray:
    """Indices of up to ``k`` misclassified samples, most confident first (ties: lower index)."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    order = np.argsort(-np.asarray(confidence)[wrong], kind="stable")
    return wrong[order[:k]]


def first_layer_weights(clf: Classifier) -> np.ndarray:
    """The weights of the network's first layer with weights: an ``(inputs, units)`` matrix, or
    a convolution's ``(filters, channels, kh, kw)`` kernels."""
    for layer in clf.model.layers:
        weight = layer.params.get("weight")
        if weight is not None and weight.ndim in (2, 4):
            return np.asarray(weight)
    raise ReportError("the model has no layer with weights")


def weights_figure(clf: Classifier, a: Analysis) -> ReportFigure:
    """``weights.png``: a convolutional network's first-layer filters, or an MLP's first-layer
    units as the 28x28 images of their weights."""
    weights = first_layer_weights(clf)
    if weights.ndim == 4:
        f, c, kh, kw = weights.shape
        return ReportFigure(
            "weights.png", "First-layer filters", "weights",
            f"Each image is one of the first convolution's {f} filters: the {kh}x{kw} weights it slides over "
            f"the image{f' (the mean over its {c} input channels)' if c > 1 else ''}. Red weights count ink "
            "for the filter's output, blue against it: many filters become edge and stroke detectors.",
            lambda p: plots.plot_conv_filters(weights, p))
    unit = "hidden unit" if len(clf.hidden_activations(a.x[:1])) > 0 else "output unit"
    return ReportFigure(
        "weights.png", "First-layer weights", "weights",
        f"Each image is one {unit}'s weights on the 784 input pixels, laid out as the 28x28 image "
        "they look at.",
        lambda p: plots.plot_first_layer_weights(weights, p,
                                                 title=f"First-layer weights, one image per {unit}"))


def feature_maps_figure(clf: Classifier, a: Analysis) -> ReportFigure | None:
    """``feature_maps.png``: what each convolution computes for the first test digit (None for
    a network without convolutions)."""
    found = clf.feature_maps(a.x[:1])
    if not found:
        return None
    layers = [(f.title, f.maps[0]) for f in found]
    index = int(a.index[0])
    return ReportFigure(
        "feature_maps.png", "Feature maps of one digit", "feature-maps",
        f"{a.title} test image {index} (a {a.by_label.get(int(a.y[0]), int(a.y[0]))}) and, for each "
        "convolution, the maps it computes "
        "(after its batch norm and activation, before pooling), on the layer's own scale: the first "
        "maps respond to strokes and edges in the image itself, deeper ones to larger, more abstract "
        "parts of the digit.",
        lambda p: plots.plot_feature_maps(a.x[0], layers, p, title=f"Feature maps of test image {index}"))


def per_class_table(report: dict[str, Any], kind: str = "digit") -> str:
    """HTML table of per-class precision, recall, F1 and support (a classification report)."""
    import html

    head = (f"<tr><th>{html.escape(kind)}</th><th>precision</th><th>recall</th><th>F1</th>"
            "<th>test images</th></tr>")
    body = "".join(f"<tr><th scope=\"row\">{html.escape(name)}</th><td>{s['precision']:.4f}</td>"
                   f"<td>{s['recall']:.4f}</td><td>{s['f1']:.4f}</td><td>{s['support']:,}</td></tr>"
                   for name, s in report["per_class"].items())
    return (f'<table class="per-class"><caption>Per-class scores (macro F1 {report["macro_f1"]:.4f})'
            f"</caption>{head}{body}</table>")


def robustness_table(results: dict[str, Any]) -> str:
    """HTML table of the accuracy at each strength of each perturbation."""
    import html

    rows = "".join(
        f"<tr><th scope=\"row\">{html.escape(kind)}</th><td>"
        + ", ".join(f"{s:g}: {acc:.4f}" for s, acc in zip(r["strengths"], r["accuracy"], strict=True))
        + f"</td><td>{html.escape(r['unit'])}</td></tr>"
        for kind, r in results["perturbations"].items())
    return ("<table class=\"robustness\"><caption>Accuracy at each strength</caption>"
            f"<tr><th>perturbation</th><th>strength: accuracy</th><th>strength in</th></tr>{rows}</table>")


def report_figures(run: Run, a: Analysis, *, mistakes: int = 25, per_class: int = 10,
                   robustness: dict[str, Any] | None = None) -> list[ReportFigure]:
    """The report's figures for ``run``, given the model's analysis ``a`` of the test set (and
    its robustness results, when measured)."""
    clf = run.classifier
    assert clf is not None
    wrong = confident_mistakes(a.y, a.predicted, a.confidence, mistakes)
    n_wrong = int(np.count_nonzero(a.y != a.predicted))
    per = a.report["per_class"]
    history = run.metrics["history"]
    monitor = "validation accuracy" if history.get("monitor") == "val_accuracy" else "validation loss"
    figures = [
        ReportFigure(
            "history.png", "Loss and accuracy per epoch", "history",
            "Training values are means over each epoch while the weights change; validation values "
            f"are measured on the held-out images after each epoch. The star marks the best epoch, "
            f"chosen by {monitor}.",
            lambda p: plots.plot_history(history, p)),
        ReportFigure(
            "confusion.png", "Confusion matrix", "confusion",
            f"Rows: true {a.kind}; columns: predicted {a.kind}; counts over {len(a.x):,} {a.title} test "
            f"images. Colour shows the fraction of each true {a.kind}'s images.",
            lambda p: plots.plot_confusion_matrix(a.report["confusion_matrix"], a.names, p,
                                                  kind=a.kind)),
        ReportFigure(
            "precision_recall.png", "Precision and recall per class", "precision-recall",
            f"Precision: of the images predicted as a {a.kind}, the fraction that are it. "
            f"Recall: of the images of a {a.kind}, the fraction found.",
            lambda p: plots.plot_precision_recall([per[n]["precision"] for n in a.names],
                                                  [per[n]["recall"] for n in a.names], a.names, p,
                                                  kind=a.kind),
            extra=per_class_table(a.report, a.kind)),
        ReportFigure(
            "mistakes.png", "Most confidently wrong test images", "mistakes",
            f"{n_wrong:,} of {len(a.x):,} test images are misclassified; shown: the {len(wrong)} the "
            f"model was surest about, with the probability it gave its wrong answer. {a.title} test "
            f"indices, in order: {', '.join(str(int(i)) for i in a.index[wrong]) or 'none'}.",
            lambda p: plots.plot_confident_mistakes(
                a.x[wrong], a.y[wrong], a.predicted[wrong], a.confidence[wrong], p, names=a.by_label,
                title=f"The {len(wrong)} most confidently wrong test images" if len(wrong) else
                "Most confidently wrong test images")),
        ReportFigure(
            "samples.png", "Sample images per class", "samples",
            f"The first {per_class} test images of each {a.kind}.",
            lambda p: plots.plot_class_samples(a.x, a.y, a.classes, p, per_class=per_class, names=a.by_label,
                                               title=f"Sample {a.title} test images per class")),
        weights_figure(clf, a),
        *([maps] if (maps := feature_maps_figure(clf, a)) is not None else []),
        ReportFigure(
            "risk_coverage.png", "Answering only when sure", "risk-coverage",
            "Sorted by the model's confidence (its top probability), the test images it would answer "
            "at each threshold, and its accuracy on those: `digitnet predict --min-confidence P` and "
            "`digitnet serve --min-confidence P` say \"not sure\" below the threshold.",
            lambda p: plots.plot_risk_coverage(a.confidence, a.predicted == a.y, p)),
    ]
    if history.get("diagnostics"):
        figures.append(ReportFigure(
            "diagnostics.png", "Training diagnostics", "diagnostics",
            "Per epoch, each layer's weight-gradient norm and update-to-weight ratio (averaged over "
            "steps spread through the epoch; around 1e-3 is the usual healthy ratio), and the share of "
            "units that are dead (ReLU: 0 for every probe image) or saturated (sigmoid, tanh: on a flat "
            "end for at least half of them), measured on 500 training images.",
            lambda p: plots.plot_diagnostics(history["diagnostics"], p)))
    if robustness is not None:
        figures.append(ReportFigure(
            "robustness.png", "Robustness to changed digits", "robustness",
            f"Accuracy on {robustness['n_images']:,} test images as every one is rotated, shifted, scaled, "
            "thinned or thickened, blurred, made noisy, partly covered by a bar, or inverted (the same "
            "numbers as `digitnet evaluate RUN --robustness`, saved in robustness.json).",
            lambda p: plots.plot_robustness([(run.name, robustness)], p), extra=robustness_table(robustness)))
    return figures
