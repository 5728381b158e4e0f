"""Losses: a scalar from the network's outputs and the targets, and its gradient.

A loss is used in two calls: ``value = loss.forward(outputs, targets)`` then
``grad = loss.backward()`` (``dL/doutputs``, same shape as ``outputs``; the same array
however often it is called). Each loss also knows its *link*: how raw network outputs
become probabilities (``loss.link``) and labels (``loss.predict_labels``), how many outputs
a network needs for ``k`` classes (``loss.outputs_for``), and which output activation, if
any, the network must end in (``output_activation``), so the rest of the code never has to
guess whether a model ends in logits or in probabilities.

The output activation and the loss are fused where that is the stable form:
:class:`SoftmaxCrossEntropy` and :class:`BinaryCrossEntropy` take *logits* and never
produce NaN or inf for finite input, however large. Integer labels outside ``0..k-1`` are
an error in every loss.

Every loss is registered in :data:`LOSSES` under its ``name`` (and aliases).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import Registry
from .workspace import Workspace


class Loss(Workspace):
    """Base class."""

    name = "loss"
    output_activation: str | None = None  # what the network must end in ("sigmoid"), if anything

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def outputs_for(self, n_classes: int) -> int:
        """Network outputs needed for ``n_classes`` classes (one per class by default)."""
        return n_classes

    def link(self, outputs: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, k)`` from raw outputs."""
        return outputs

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        """Class indices ``(n,)`` from raw outputs: argmax, or a threshold for one output."""
        if outputs.ndim == 1 or outputs.shape[1] == 1:
            return (outputs.reshape(-1) > 0.5).astype(np.int64)
        return outputs.argmax(axis=1)

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


LOSSES: Registry[Loss] = Registry("loss")


def check_labels(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """Integer labels ``(n,)``, each in ``0..num_classes-1``; anything else is a ValueError."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{n} outputs but labels of shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if n and (np.minimum.reduce(labels) < 0 or np.maximum.reduce(labels) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    return labels


def one_hot(labels: np.ndarray, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """``(n,)`` integer labels -> ``(n, num_classes)`` one-hot rows."""
    labels = check_labels(labels, np.asarray(labels).shape[0], num_classes)
    out = np.zeros((labels.shape[0], num_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise probabilities from logits ``(n, k)``; stable for any finite input."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, overflow-free."""
    return 0.5 * np.tanh(0.5 * z) + 0.5


def _as_targets(targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Integer labels as one-hot rows of ``outputs``' width; a target matrix checked for shape."""
    targets = np.asarray(targets)
    if targets.ndim == 1:
        return one_hot(check_labels(targets, len(outputs), outputs.shape[1]), outputs.shape[1], outputs.dtype)
    if targets.shape != outputs.shape:
        raise ValueError(f"targets {targets.shape} do not match outputs {outputs.shape}")
    return targets


@LOSSES.register(aliases=("ce", "softmax_cross_entropy"))
class SoftmaxCrossEntropy(Loss):
    """Mean cross-entropy of ``softmax(logits)`` against the targets.

    Targets are integer labels ``(n,)`` or a probability matrix ``(n, k)`` (one-hot or
    smoothed). With ``p = softmax(z)`` and one-hot targets ``y``:

    * loss ``= mean over rows of -sum_k y_k log p_k``, where ``log p = s - log(sum(exp(s)))``
      and ``s = z - max(z)`` row by row, so no log of 0 and no overflow;
    * gradient ``= (p - y) / n``: no division by a probability, so it cannot blow up.
    """

    name = "cross_entropy"

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        if outputs.ndim != 2:
            raise ValueError(f"cross-entropy expects logits (n, k), got shape {outputs.shape}")
        n, k = outputs.shape
        s = outputs - np.maximum.reduce(outputs, axis=1, keepdims=True)  # shifted logits
        e = np.exp(s)
        sums = np.add.reduce(e, axis=1, keepdims=True)
        self._p = e / sums  # softmax
        log_sums = np.log(sums)  # log p = s - log_sums
        targets = np.asarray(targets)
        if targets.ndim == 1:  # one-hot y: only each row's own class counts
            self._labels = labels = check_labels(targets, n, k)
            self._y = None
            return float(np.add.reduce(log_sums[:, 0] - s[np.arange(n), labels], dtype=np.float64)) / n
        self._y = y = _as_targets(targets, outputs)
        return -float(np.sum(y * (s - log_sums), dtype=np.float64)) / n

    def backward(self) -> np.ndarray:
        """``(p - y) / n``; with labels, ``p / n`` with ``1 / n`` taken off each row's class."""
        p, n = self._p, len(self._p)
        if self._y is not None:
            return (p - self._y) / n
        grad = p / n
        grad[np.arange(n), self._labels] -= 1.0 / n
        return grad

    def link(self, outputs: np.ndarray) -> np.ndarray:
        return softmax(outputs)

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.argmax(axis=1)


@LOSSES.register(aliases=("bce",))
class BinaryCrossEntropy(Loss):
    """Mean binary cross-entropy of ``p = sigmoid(z)`` against 0/1 targets, from logits.

    Written as ``max(z, 0) - z*y + log(1 + exp(-|z|))``, which equals
    ``-y log p - (1-y) log(1-p)`` but never takes the log of 0. Gradient:
    ``(sigmoid(z) - y) / N`` over the ``N`` outputs. Outputs may be ``(n,)`` or
    ``(n, 1)``; targets (labels 0 or 1, or probabilities) are broadcast to their shape.
    """

    name = "binary_cross_entropy"

    def outputs_for(self, n_classes: int) -> int:
        if n_classes != 2:
            raise ValueError(f"binary cross-entropy needs exactly 2 classes, got {n_classes}")
        return 1

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        z = outputs
        targets = np.asarray(targets)
        if targets.size != z.size:
            raise ValueError(f"{z.size} outputs but {targets.size} targets")
        if targets.dtype.kind in "iub" and targets.size and (targets.min() < 0 or targets.max() > 1):
            raise ValueError(f"binary labels must be 0 or 1, got {targets.min()}..{targets.max()}")
        y = targets.reshape(z.shape).astype(z.dtype)
        self._z, self._y = z, y
        per_output = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return float(per_output.mean(dtype=np.float64))

    def backward(self) -> np.ndarray:
        return (sigmoid(self._z) - self._y) / self._z.size

    def link(self, outputs: np.ndarray) -> np.ndarray:
        """Two-column probabilities ``[P(class 0), P(class 1)]``."""
        p1 = sigmoid(outputs.reshape(-1, 1))
        return np.hstack([1.0 - p1, p1])

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        return (outputs.reshape(-1) > 0).astype(np.int64)


@LOSSES.register(aliases=("mean_squared_error",))
class MeanSquaredError(Loss):
    """Squared error between outputs ``a`` and targets ``y``: ``sum((a - y)^2) / d``.

    Integer labels ``(n,)`` are one-hot encoded to the outputs' width. The reduction sets
    ``d``: ``"mean"`` averages over every element (PyTorch's ``MSELoss``); ``"sample"`` sums
    over the outputs and averages over samples (gradient ``2(a - y)/n``, the form seed 004
    updates with); ``"sum"`` sums everything (``d = 1``). Gradient ``2 (a - y) / d``.
    The network's outputs are sigmoids (``output_activation``), as in the seeds.
    """

    name = "mse"
    output_activation = "sigmoid"
    REDUCTIONS = ("mean", "sample", "sum")

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in self.REDUCTIONS:
            raise ValueError(f"reduction must be one of {self.REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        a = outputs.reshape(len(outputs), -1)
        y = _as_targets(targets, a) if np.asarray(targets).ndim == 1 and a.shape[1] > 1 else \
            np.asarray(targets, dtype=a.dtype).reshape(a.shape)
        self._diff, self._shape = a - y, outputs.shape
        self._d = {"mean": self._diff.size, "sample": len(a), "sum": 1}[self.reduction]
        return float(np.sum(self._diff * self._diff, dtype=np.float64)) / self._d

    def backward(self) -> np.ndarray:
        return (2.0 / self._d * self._diff).reshape(self._shape)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}
