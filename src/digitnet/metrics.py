"""Classification metrics: accuracy, confusion matrix, per-class precision/recall/F1."""

from __future__ import annotations

from typing import Any

import numpy as np


def _check(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} true labels but {y_pred.shape[0]} predictions")
    return y_true, y_pred


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predictions equal to the true label."""
    y_true, y_pred = _check(y_true, y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """``(k, k)`` counts; row = true class, column = predicted class."""
    y_true, y_pred = _check(y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=0), y_pred.max(initial=0))) + 1
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return cm


def precision_recall_f1(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def classification_report(y_true: np.ndarray, y_pred: np.ndarray,
                          num_classes: int | None = None,
                          class_names: list[str] | None = None) -> dict[str, Any]:
    """Everything above as a JSON-able dict (what ``metrics.json`` stores)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    scores = precision_recall_f1(cm)
    names = class_names or [str(i) for i in range(cm.shape[0])]
    return {
        "accuracy": accuracy(y_true, y_pred),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {"precision": float(scores["precision"][i]), "recall": float(scores["recall"][i]),
                   "f1": float(scores["f1"][i]), "support": int(scores["support"][i])}
            for i, name in enumerate(names)
        },
        "macro_f1": float(scores["f1"].mean()),
    }


def format_report(report: dict[str, Any]) -> str:
    """Human-readable text of :func:`classification_report`: accuracy, matrix, per-class scores.

    Short class names ("7") head the matrix's columns; longer ones ("T-shirt/top") label its
    rows with their position, which then heads the columns."""
    cm = np.asarray(report["confusion_matrix"])
    names = list(report["per_class"])
    width = max(5, len(str(cm.max())) + 1)
    short = all(len(n) < width for n in names)
    rows = names if short else [f"{i} {n}" for i, n in enumerate(names)]
    columns = names if short else [str(i) for i in range(len(names))]
    label = max(5, *(len(r) for r in rows))
    align = ">" if short else "<"
    lines = [f"accuracy: {report['accuracy']:.4f}  ({int(np.trace(cm))}/{int(cm.sum())})", "",
             "confusion matrix (rows: true, columns: predicted)",
             " " * (label + 1) + "".join(f"{n:>{width}}" for n in columns)]
    for name, row in zip(rows, cm, strict=True):
        lines.append(f"{name:{align}{label}} " + "".join(f"{v:>{width}}" for v in row))
    lines += ["", f"{'class':{align}{label}} {'precision':>10} {'recall':>8} {'f1':>8} {'support':>8}"]
    for name, s in zip(rows, report["per_class"].values(), strict=True):
        lines.append(f"{name:{align}{label}} {s['precision']:>10.4f} {s['recall']:>8.4f} {s['f1']:>8.4f} "
                     f"{s['support']:>8}")
    lines.append(f"{'macro':{align}{label}} {'':>10} {'':>8} {report['macro_f1']:>8.4f}")
    return "\n".join(lines)
