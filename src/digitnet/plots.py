"""Figures of a training run, drawn with matplotlib's Agg renderer (no display needed).

Every ``plot_*`` function takes plain arrays (or a history dict as stored in
``metrics.json``), draws one figure, and returns it as PNG bytes; with ``path`` it also
writes the file (atomically). Figures use constrained layout and one palette
(:data:`PALETTE`, :data:`DIGIT_COLORS`), so a report reads as a whole. Pixel sizes are
fixed by the figure size in inches times :data:`DPI` and documented per function.

This module only draws: choosing which images to show (e.g. the most confident
mistakes) is the caller's job (see :mod:`digitnet.report`).
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from .atomic import write_bytes

DPI = 100

#: One palette for every figure (and the plotly PCA in the report).
PALETTE = {
    "train": "#1f6fb4",      # blue: training curves, precision bars
    "valid": "#e8731a",      # orange: validation curves, recall bars
    "accent": "#b8312f",     # red: marks, mistakes
    "muted": "#7f7f7f",      # grey: reference lines
    "text": "#222222",
}
#: One colour per digit 0-9 (matplotlib's tab10), used wherever colour means "which digit".
DIGIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
IMAGE_CMAP = "gray_r"        # digits: dark ink on white
WEIGHT_CMAP = "RdBu_r"       # weights: red positive, blue negative, white zero
HEATMAP_CMAP = "Blues"

_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "figure.titlesize": 13,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}


# --------------------------------------------------------------------------- helpers
@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_STYLE):
        yield


def _figure(width: float, height: float) -> Figure:
    """A detached figure (no pyplot, no global state) with constrained layout."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _finish(fig: Figure, path: str | Path | None) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = buf.getvalue()
    if path is not None:
        write_bytes(path, data)
    return data


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels of PNG bytes (read from the IHDR chunk)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not PNG data")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _as_images(images: Any) -> np.ndarray:
    """``(n, 784)`` or ``(n, 28, 28)`` -> ``(n, side, side)``."""
    images = np.asarray(images)
    if images.ndim == 3:
        return images
    if images.ndim != 2:
        raise ValueError(f"expected images as (n, pixels) or (n, h, w), got shape {images.shape}")
    side = math.isqrt(images.shape[1])
    if side * side != images.shape[1]:
        raise ValueError(f"{images.shape[1]} pixels per image is not a square image")
    return images.reshape(len(images), side, side)


def _finite(values: Sequence[Any] | None) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else v for v in (values or [])], dtype=np.float64)
    return arr


def _has_values(values: np.ndarray) -> bool:
    return values.size > 0 and bool(np.isfinite(values).any())


def _blank(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


# --------------------------------------------------------------------------- figures
def plot_history(history: Mapping[str, Any], path: str | Path | None = None, *,
                 title: str = "Training history") -> bytes:
    """Loss (left) and accuracy (right) per epoch, training and validation.

    ``history`` holds lists ``epoch``, ``loss``, ``train_accuracy``, ``val_loss``,
    ``val_accuracy`` (NaN where there was no validation set) and optionally
    ``best_epoch`` with the ``monitor`` that chose it, as in ``metrics.json``. The best
    epoch is marked on the curve it was chosen by (validation loss by default). PNG of
    1100 x 420 pixels.
    """
    loss = _finite(history.get("loss"))
    epochs = _finite(history.get("epoch")) if history.get("epoch") else np.arange(1, len(loss) + 1)
    curves = {
        "loss": (loss, _finite(history.get("val_loss"))),
        "accuracy": (_finite(history.get("train_accuracy")) * 100,
                     _finite(history.get("val_accuracy")) * 100),
    }
    marker = "o" if len(epochs) <= 30 else None
    best = history.get("best_epoch")
    monitor = history.get("monitor", "val_loss")
    best_panel = "accuracy" if monitor == "val_accuracy" else "loss"
    with _style():
        fig = _figure(11, 4.2)
        axes = fig.subplots(1, 2)
        for ax, (name, (train, valid)) in zip(axes, curves.items(), strict=True):
            if _has_values(train):
                ax.plot(epochs[:len(train)], train, marker=marker, ms=4, lw=2, color=PALETTE["train"],
                        label="training (mean over the epoch)" if name == "loss" else "training")
            if _has_values(valid):
                ax.plot(epochs[:len(valid)], valid, marker=marker, ms=4, lw=2, color=PALETTE["valid"],
                        label="validation")
            curve = valid if _has_values(valid) else train
            if name == best_panel and isinstance(best, int) and 1 <= best <= len(curve):
                what = "validation" if _has_values(valid) else "training"
                ax.axvline(best, color=PALETTE["muted"], ls=":", lw=1.2)
                ax.plot([best], [curve[best - 1]], marker="*", ms=13, ls="none", color=PALETTE["accent"],
                        label=f"best epoch ({best}, lowest {what} {name})" if name == "loss"
                        else f"best epoch ({best}, highest {what} {name})")
            ax.set_title(f"{name.capitalize()} per epoch")
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True)
            if name == "accuracy":
                ax.yaxis.set_major_formatter(PercentFormatter(decimals=1 if _span(train, valid) < 5
                                                              else 0))
            if ax.lines:
                ax.legend(loc="best")
        fig.suptitle(title)
        return _finish(fig, path)


def _span(*arrays: np.ndarray) -> float:
    values = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    return float(values.max() - values.min()) if values.size else 0.0


def _class_ticks(ax: Any, axis: str, names: Sequence[str]) -> None:
    """Class names as ticks; names longer than a few letters ("T-shirt/top") slanted on x."""
    if axis == "x":
        slant = max((len(n) for n in names), default=0) > 3
        ax.set_xticks(range(len(names)), names, rotation=35 if slant else 0,
                      ha="right" if slant else "center")
    else:
        ax.set_yticks(range(len(names)), names)


def plot_confusion_matrix(cm: Any, class_names: Sequence[str], path: str | Path | None = None, *,
                          title: str = "Confusion matrix (test set)", kind: str = "digit") -> bytes:
    """Annotated heatmap of a ``(k, k)`` confusion matrix (rows true, columns predicted);
    ``kind`` is what a class is, for the axis labels ("digit", "fashion item").

    Cells are coloured by the fraction of their true class (a power scale, so that small
    error rates still show) and labelled with counts. PNG of ``W x H`` pixels with
    ``W = 100 * max(4.8, 0.62 k + 2.4)`` and ``H = 100 * max(4.2, 0.55 k + 1.6)``
    (860 x 710 for ten classes).
    """
    cm = np.asarray(cm)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not fit {k} class names")
    support = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, support, out=np.zeros(cm.shape, dtype=np.float64), where=support > 0)
    norm = PowerNorm(gamma=0.4, vmin=0.0, vmax=1.0)
    font = 10 if k <= 10 else max(5, int(100 / k))
    with _style():
        fig = _figure(max(4.8, 0.62 * k + 2.4), max(4.2, 0.55 * k + 1.6))
        ax = fig.subplots()
        image = ax.imshow(frac, cmap=HEATMAP_CMAP, norm=norm)
        for i in range(k):
            for j in range(k):
                dark = norm(frac[i, j]) > 0.55
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=font,
                        color="white" if dark else PALETTE["text"],
                        fontweight="bold" if i == j else "normal")
        _class_ticks(ax, "x", class_names)
        _class_ticks(ax, "y", class_names)
        ax.set_xlabel(f"predicted {kind}")
        ax.set_ylabel(f"true {kind}")
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        total = int(cm.sum())
        correct = int(np.trace(cm))
        ax.set_title(f"{correct:,} of {total:,} correct ({100 * correct / max(total, 1):.2f}%)",
                     fontsize=10)
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label(f"fraction of the true {kind}'s images")
        fig.suptitle(title)
        return _finish(fig, path)


def plot_digit_grid(images: Any, titles: Sequence[str], path: str | Path | None = None, *,
                    columns: int = 5, title: str = "", empty_message: str = "no images",
                    title_colors: Sequence[str] | None = None) -> bytes:
    """A grid of digit images, each with its own title (e.g. "true 7 / predicted 1 (0.93)").

    ``images`` (n, 784) or (n, 28, 28). PNG of ``100 * 2.15 * columns`` by
    ``100 * (2.3 * rows + 0.6)`` pixels, ``rows = ceil(n / columns)``; with no images,
    ``100 * 2.15 * columns`` by 150 pixels saying ``empty_message``.
    """
    imgs = _as_images(images) if len(images) else np.zeros((0, 28, 28))
    if len(titles) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(titles)} titles")
    rows = math.ceil(len(imgs) / columns)
    with _style():
        if not rows:
            fig = _figure(2.15 * columns, 1.5)
            fig.text(0.5, 0.4, empty_message, fontsize=12, ha="center", va="center")
        else:
            fig = _figure(2.15 * columns, 2.3 * rows + 0.6)
            axes = np.atleast_1d(fig.subplots(rows, columns)).reshape(rows, columns)
            for i, ax in enumerate(axes.flat):
                _blank(ax)
                if i < len(imgs):
                    ax.imshow(imgs[i], cmap=IMAGE_CMAP, interpolation="nearest")
                    ax.set_title(titles[i], fontsize=9,
                                 color=title_colors[i] if title_colors else PALETTE["text"])
        if title:
            fig.suptitle(title)
        return _finish(fig, path)


def mistake_title(true: int, predicted: int, confidence: float,
                  names: Mapping[int, str] | None = None) -> str:
    """``"true 7 / predicted 1 (0.93)"``: a misclassified image's caption; with ``names``
    (label -> class name), the names, on two lines when any name is a word:
    ``"true Shirt\npredicted T-shirt/top (0.93)"``."""
    def name(label: int) -> str:
        return str(int(label)) if names is None else names.get(int(label), str(int(label)))
    sep = "\n" if names is not None and any(len(n) > 2 for n in names.values()) else " / "
    return f"true {name(true)}{sep}predicted {name(predicted)} ({float(confidence):.2f})"


def plot_confident_mistakes(images: Any, y_true: Sequence[int], y_pred: Sequence[int],
                            confidence: Sequence[float], path: str | Path | None = None, *,
                            columns: int = 5, title: str = "Most confidently wrong test digits",
                            names: Mapping[int, str] | None = None) -> bytes:
    """Misclassified images titled ``"true 7 / predicted 1 (0.93)"``, in the given order.

    ``images`` (m, 784); ``y_true``, ``y_pred`` (m,) class labels; ``confidence`` (m,)
    the probability the model gave its (wrong) prediction; ``names`` label -> class name
    for the titles. Size as :func:`plot_digit_grid`.
    """
    titles = [mistake_title(t, p, c, names) for t, p, c in zip(y_true, y_pred, confidence, strict=True)]
    return plot_digit_grid(images, titles, path, columns=columns, title=title,
                           empty_message="no test image was misclassified")


def plot_class_samples(images: Any, labels: Sequence[int], classes: Sequence[int],
                       path: str | Path | None = None, *, per_class: int = 10,
                       title: str = "Sample test digits per class",
                       names: Mapping[int, str] | None = None) -> bytes:
    """One row per class: its first ``per_class`` images from ``images`` (n, 784), labelled
    by the class (its name from ``names``, label -> name, when given).

    With ``c = min(per_class, most images of any class)`` columns, a PNG of
    ``100 * (0.85 * c + 0.9)`` by ``100 * (0.85 * len(classes) + 0.7)`` pixels (940 x 920
    for ten classes of ten).
    """
    imgs = _as_images(images)
    labels = np.asarray(labels)
    k = len(classes)
    if k == 0:
        raise ValueError("no classes to show")
    per_class = max(1, min(per_class, max(int(np.count_nonzero(labels == c)) for c in classes)))
    wide = names is not None and any(len(names.get(int(c), str(c))) > 3 for c in classes)  # "Ankle boot"
    with _style():
        fig = _figure(0.85 * per_class + 0.9, 0.85 * k + 0.7)
        fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.02, hspace=0.02)
        axes = np.atleast_1d(fig.subplots(k, per_class)).reshape(k, per_class)
        for r, c in enumerate(classes):
            idx = np.flatnonzero(labels == c)[:per_class]
            for col in range(per_class):
                ax = axes[r, col]
                _blank(ax)
                if col < len(idx):
                    ax.imshow(imgs[idx[col]], cmap=IMAGE_CMAP, interpolation="nearest")
            text = str(c) if names is None else names.get(int(c), str(c))
            axes[r, 0].set_ylabel(text, rotation=0, fontsize=9 if wide else 13, fontweight="bold",
                                  color=DIGIT_COLORS[int(c) % 10], labelpad=12, va="center", ha="right")
        fig.suptitle(title)
        return _finish(fig, path)


def plot_first_layer_weights(weights: Any, path: str | Path | None = None, *, n_units: int = 64,
                             columns: int = 8,
                             title: str = "First-layer weights, one image per hidden unit") -> bytes:
    """The first ``n_units`` columns of a ``(784, units)`` weight matrix as 28x28 images.

    Each unit has its own symmetric colour scale (red positive, blue negative, white
    zero), so the pattern a unit responds to is visible whatever its magnitude. PNG of
    ``100 * 1.2 * columns`` by ``100 * (1.3 * rows + 0.7)`` pixels (960 x 1110 for 64).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"expected a (pixels, units) weight matrix, got shape {w.shape}")
    n = min(n_units, w.shape[1])
    shown = f"first {n} of {w.shape[1]}" if n < w.shape[1] else f"all {n}"
    return _weight_grid(_as_images(w[:, :n].T), "unit", columns, f"{title} ({shown})", path)


def plot_conv_filters(weights: Any, path: str | Path | None = None, *, n_filters: int = 64,
                      columns: int = 8, title: str = "First-layer convolution filters") -> bytes:
    """The first ``n_filters`` kernels of a convolution's ``(filters, channels, kh, kw)`` weights,
    each as a small ``kh x kw`` image (the mean over input channels when there are several).

    Each filter has its own symmetric colour scale (red positive, blue negative), so the
    pattern it detects shows whatever its size: an edge, a stroke end, a blob. PNG of
    ``100 * 1.2 * columns`` by ``100 * (1.3 * rows + 0.7)`` pixels.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"expected (filters, channels, height, width) weights, got shape {w.shape}")
    n = min(n_filters, w.shape[0])
    shown = f"first {n} of {w.shape[0]}" if n < w.shape[0] else f"all {n}"
    channels = f", mean over {w.shape[1]} input channels" if w.shape[1] > 1 else ""
    return _weight_grid(w[:n].mean(axis=1), "filter", min(columns, n),
                        f"{title} ({shown}, {w.shape[2]}x{w.shape[3]}{channels})", path)


def _weight_grid(images: np.ndarray, noun: str, columns: int, title: str, path: str | Path | None) -> bytes:
    """``images (n, h, w)`` of weights in a grid of ``columns``, each on its own symmetric
    colour scale (red positive, blue negative, white zero), titled ``"{noun} {i}"``."""
    n = len(images)
    columns = max(1, columns)
    rows = max(1, math.ceil(n / columns))
    with _style():
        fig = _figure(1.2 * columns, 1.3 * rows + 0.7)
        axes = np.atleast_1d(fig.subplots(rows, columns)).reshape(rows, columns)
        for i, ax in enumerate(axes.flat):
            _blank(ax)
            if i < n:
                vmax = float(np.abs(images[i]).max()) or 1.0
                ax.imshow(images[i], cmap=WEIGHT_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest")
                ax.set_title(f"{noun} {i}", fontsize=8, pad=2)
        fig.suptitle(title)
        fig.supxlabel(f"red: positive weight, blue: negative, white: zero; each {noun} on its own scale",
                      fontsize=9, color=PALETTE["muted"])
        return _finish(fig, path)


def plot_feature_maps(image: Any, layers: Sequence[tuple[str, Any]], path: str | Path | None = None, *,
                      columns: int = 16, max_maps: int = 64, title: str = "Feature maps of one test digit"
                      ) -> bytes:
    """One digit and what each convolution makes of it: ``image`` (784,) or (28, 28), and per
    convolution a ``(title, maps (channels, height, width))`` pair, its first ``max_maps``
    maps in rows of ``columns``, each on the scale of the whole layer (black 0, bright the
    layer's largest value; maps with negative values, after tanh, are centred on grey).

    PNG of ``100 * 0.9 * columns`` pixels wide and about ``100 * (0.9 * rows + 0.5)`` high
    per convolution, plus the digit.
    """
    picture = _as_images(np.asarray(image).reshape(1, -1))[0]
    blocks = [(name, np.asarray(maps, dtype=np.float64)[:max_maps]) for name, maps in layers]
    if not blocks:
        raise ValueError("no convolution to show")
    for name, maps in blocks:
        if maps.ndim != 3:
            raise ValueError(f"{name}: expected maps of shape (channels, height, width), got {maps.shape}")
    heights = [1.6] + [0.9 * math.ceil(len(m) / columns) + 0.45 for _, m in blocks]
    with _style():
        fig = _figure(0.9 * columns, sum(heights) + 0.6)
        grids = fig.subfigures(len(heights), 1, height_ratios=heights)
        ax = grids[0].subplots()
        _blank(ax)
        ax.imshow(picture, cmap=IMAGE_CMAP, interpolation="nearest")
        ax.set_title("the digit", fontsize=9)
        for sub, (name, maps) in zip(grids[1:], blocks, strict=True):
            rows = math.ceil(len(maps) / columns)
            axes = np.atleast_1d(sub.subplots(rows, columns)).reshape(rows, columns)
            top = float(np.abs(maps).max()) or 1.0
            signed = bool(maps.min() < 0)
            for i, a in enumerate(axes.flat):
                _blank(a)
                if i < len(maps):
                    a.imshow(maps[i], cmap="gray" if signed else "inferno", interpolation="nearest",
                             vmin=-top if signed else 0.0, vmax=top)
            sub.suptitle(name, fontsize=10, fontweight="normal")
        fig.suptitle(title)
        return _finish(fig, path)


def plot_precision_recall(precision: Sequence[float], recall: Sequence[float],
                          class_names: Sequence[str], path: str | Path | None = None, *,
                          title: str = "Precision and recall per class (test set)",
                          kind: str = "digit") -> bytes:
    """Grouped bars of per-class precision and recall, each labelled with its value.

    The value axis starts just below the lowest bar so that differences between
    good classes are visible. PNG of ``100 * max(5, 0.85 k + 2)`` by 450 pixels.
    """
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    k = len(class_names)
    if p.shape != (k,) or r.shape != (k,):
        raise ValueError(f"precision {p.shape} and recall {r.shape} must have {k} values")
    low = float(min(p.min(initial=1.0), r.min(initial=1.0)))
    bottom = max(0.0, math.floor((low - 0.02) * 20) / 20)
    headroom = (1.0 - bottom) * 0.16
    x = np.arange(k)
    width = 0.4
    with _style():
        fig = _figure(max(5.0, 0.85 * k + 2.0), 4.5)
        ax = fig.subplots()
        for offset, values, name, color in ((-width / 2, p, "precision", PALETTE["train"]),
                                            (width / 2, r, "recall", PALETTE["valid"])):
            bars = ax.bar(x + offset, values - bottom, width, bottom=bottom, color=color, label=name)
            ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], rotation=90, padding=2, fontsize=7.5)
        _class_ticks(ax, "x", class_names)
        ax.set_xlabel(kind)
        ax.set_ylabel("score")
        ax.set_ylim(bottom, 1.0 + headroom)
        ax.set_yticks([t for t in ax.get_yticks() if bottom - 1e-9 <= t <= 1.0 + 1e-9])
        ax.grid(True, axis="y")
        ax.set_axisbelow(True)
        fig.legend(loc="outside lower center", ncols=2)
        fig.suptitle(title)
        return _finish(fig, path)


def plot_validation_curves(runs: Sequence[tuple[str, Mapping[str, Any]]],
                           path: str | Path | None = None, *,
                           title: str = "Validation curves") -> bytes:
    """Overlay several runs' validation accuracy (left) and loss (right) per epoch.

    ``runs`` is ``[(name, history), ...]`` with histories as in :func:`plot_history`. A
    run without a validation set shows its training curves, dashed, marked "(training)".
    PNG of 1100 by ``100 * (4.4 + 0.25 * ceil(len(runs) / 2))`` pixels.
    """
    if not runs:
        raise ValueError("no runs to compare")
    legend_rows = math.ceil(len(runs) / 2)
    with _style():
        fig = _figure(11, 4.4 + 0.25 * legend_rows)
        ax_acc, ax_loss = fig.subplots(1, 2)
        for i, (name, history) in enumerate(runs):
            color = DIGIT_COLORS[i % len(DIGIT_COLORS)]
            acc = _finite(history.get("val_accuracy")) * 100
            loss = _finite(history.get("val_loss"))
            style, label = "-", name
            if not _has_values(acc):
                acc = _finite(history.get("train_accuracy")) * 100
                loss = _finite(history.get("loss"))
                style, label = "--", f"{name} (training)"
            epochs = (_finite(history.get("epoch")) if history.get("epoch")
                      else np.arange(1, len(acc) + 1))
            ls = style if i < len(DIGIT_COLORS) else ":"
            marker = "o" if len(epochs) <= 30 else None
            ax_acc.plot(epochs[:len(acc)], acc, ls=ls, color=color, marker=marker, ms=3.5, lw=1.8,
                        label=label)
            ax_loss.plot(epochs[:len(loss)], loss, ls=ls, color=color, marker=marker, ms=3.5, lw=1.8)
        ax_acc.set_title("Validation accuracy per epoch")
        ax_acc.set_ylabel("accuracy")
        ax_acc.yaxis.set_major_formatter(PercentFormatter(decimals=1))
        ax_loss.set_title("Validation loss per epoch")
        ax_loss.set_ylabel("loss")
        for ax in (ax_acc, ax_loss):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True)
        fig.legend(loc="outside lower center", ncols=min(2, len(runs)))
        fig.suptitle(title)
        return _finish(fig, path)


def plot_robustness(runs: Sequence[tuple[str, Mapping[str, Any]]], path: str | Path | None = None, *,
                    title: str = "Accuracy under perturbations of the test digits") -> bytes:
    """Accuracy against perturbation strength, one small panel per perturbation, one line per
    run. ``runs`` is ``[(name, results)]`` with results as :func:`digitnet.robustness.robustness`
    returns them. PNG of 1200 by 620 pixels."""
    if not runs:
        raise ValueError("no robustness results to draw")
    kinds = list(runs[0][1]["perturbations"])
    columns = 4
    with _style():
        fig = _figure(12, 6.2)
        axes = fig.subplots(math.ceil(len(kinds) / columns), columns, squeeze=False).ravel()
        for ax, kind in zip(axes, kinds, strict=False):
            for i, (name, results) in enumerate(runs):
                r = results["perturbations"].get(kind)
                if r is None:
                    continue
                ax.plot(r["strengths"], np.asarray(r["accuracy"]) * 100, marker="o", ms=3.5, lw=1.8,
                        color=DIGIT_COLORS[i % len(DIGIT_COLORS)], label=name)
            ax.set_title(kind)
            ax.set_xlabel(runs[0][1]["perturbations"][kind]["unit"], fontsize=8)
            ax.set_ylim(0, 101)
            ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
            ax.grid(True)
        for ax in axes[len(kinds):]:
            ax.set_visible(False)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
                   ncols=min(4, len(runs)))
        fig.suptitle(title)
        return _finish(fig, path)


def plot_risk_coverage(confidence: Sequence[float], correct: Sequence[bool], path: str | Path | None = None,
                       *, thresholds: Sequence[float] = (0.5, 0.9, 0.99),
                       title: str = "Answering only when sure: accuracy against coverage") -> bytes:
    """The risk-coverage curve: for every confidence threshold, the fraction of test images the
    model answers (its top probability is at least the threshold) against its accuracy on
    them; ``thresholds`` are marked. PNG of 700 by 480 pixels."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    order = np.argsort(-conf, kind="stable")
    answered = np.arange(1, len(conf) + 1)
    coverage = answered / len(conf)
    accuracy = np.cumsum(ok[order]) / answered
    with _style():
        fig = _figure(7, 4.8)
        ax = fig.subplots()
        ax.plot(coverage * 100, accuracy * 100, lw=2, color=PALETTE["train"])
        for t in thresholds:
            k = int(np.count_nonzero(conf >= t))
            if k:
                ax.plot([100 * k / len(conf)], [100 * ok[conf >= t].mean()], "o", color=PALETTE["accent"])
                ax.annotate(f"p ≥ {t:g}", (100 * k / len(conf), 100 * ok[conf >= t].mean()),
                            textcoords="offset points", xytext=(-8, -14), fontsize=8, ha="right")
        ax.set_xlabel("coverage: test images answered")
        ax.set_ylabel("accuracy on the answered ones")
        ax.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        ax.yaxis.set_major_formatter(PercentFormatter(decimals=1))
        ax.grid(True)
        fig.suptitle(title)
        return _finish(fig, path)


def plot_diagnostics(diagnostics: Sequence[Mapping[str, Any]], path: str | Path | None = None, *,
                     title: str = "Training diagnostics, layer by layer") -> bytes:
    """Per epoch (``diagnostics`` as ``History.diagnostics`` records them): each layer's
    weight-gradient norm and update-to-weight ratio (log scales), and each activation layer's
    share of dead (ReLU) or saturated (sigmoid, tanh) units. PNG of 1200 by 400 pixels."""
    epochs = np.arange(1, len(diagnostics) + 1)
    names = sorted({n for d in diagnostics for n in d.get("layers", {})}, key=lambda n: int(n.split(".")[0]))
    units = sorted({k for d in diagnostics for k in d.get("units", {})}, key=int)
    with _style():
        fig = _figure(12, 4.0)
        axes = fig.subplots(1, 3)
        for i, name in enumerate(names):
            color = DIGIT_COLORS[i % len(DIGIT_COLORS)]
            for ax, key in zip(axes[:2], ("grad_norm", "update_ratio"), strict=True):
                values = [d["layers"].get(name, {}).get(key, np.nan) for d in diagnostics]
                ax.plot(epochs, values, marker="o", ms=3.5, lw=1.8, color=color,
                        label=f"layer {name.split('.')[0]}")
        for i, key in enumerate(units):
            first = next(d["units"][key] for d in diagnostics if key in d.get("units", {}))
            values = [100 * d["units"][key]["fraction"] if key in d.get("units", {}) else np.nan
                      for d in diagnostics]
            axes[2].plot(epochs, values, marker="o", ms=3.5, lw=1.8, label=f"layer {key} ({first['kind']}, "
                         f"{first['measure']})", color=DIGIT_COLORS[i % len(DIGIT_COLORS)])
        for ax, label in zip(axes, ("weight gradient norm", "update / weight norm", "units"), strict=True):
            ax.set_xlabel("epoch")
            ax.set_title(label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True)
            if ax.lines:
                ax.legend(loc="best", fontsize=8)
        for ax in axes[:2]:
            if any(line.get_ydata().size and np.nanmax(line.get_ydata()) > 0 for line in ax.lines):
                ax.set_yscale("log")
        axes[2].set_ylim(-2, 102)
        axes[2].yaxis.set_major_formatter(PercentFormatter(decimals=0))
        axes[2].set_title("dead or saturated units")
        fig.suptitle(title)
        return _finish(fig, path)
