"""Losses: a scalar from the network's outputs and the targets, and its gradient.

A loss is used in two calls: ``value = loss.forward(outputs, targets)`` then
``grad = loss.backward()`` (``dL/doutputs``, same shape as ``outputs``). Each loss
also knows its *link*: how raw network outputs become probabilities
(``loss.link``) and labels (``loss.predict_labels``), so the rest of the code
never has to guess whether a model ends in logits or in probabilities.

The output activation and the loss are fused where that is the stable form:
:class:`SoftmaxCrossEntropy` and :class:`BinaryCrossEntropy` take *logits*
and never produce NaN or inf for finite input, however large.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Loss:
    """Base class."""

    name = "loss"

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        raise NotImplementedError

    def link(self, outputs: np.ndarray) -> np.ndarray:
        """Probabilities from raw outputs ``(n, k)``."""
        return outputs

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        """Class labels ``(n,)`` from raw outputs: argmax, or a threshold for one output."""
        if outputs.ndim == 1 or outputs.shape[1] == 1:
            return (outputs.reshape(-1) > 0.5).astype(np.int64)
        return outputs.argmax(axis=1)

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise probabilities from logits ``(n, k)``; stable for any finite input."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, overflow-free."""
    return 0.5 * np.tanh(0.5 * z) + 0.5


class SoftmaxCrossEntropy(Loss):
    """Mean cross-entropy of ``softmax(logits)`` against the targets.

    Targets are integer labels ``(n,)`` or a probability matrix ``(n, k)``
    (one-hot or smoothed). With ``s = z - max(z)`` (row-wise) and
    ``p = softmax(z) = exp(s) / sum(exp(s))``, the loss of a row with label ``c`` is
    ``log(sum(exp(s))) - s_c`` and the gradient is simply ``(p - y) / n``: no
    division by a probability, so it cannot blow up. ``forward`` keeps ``p``, so
    ``backward`` is one scaled copy and a scatter, with no further exp or log.
    """

    name = "cross_entropy"

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        if outputs.ndim != 2:
            raise ValueError(f"cross-entropy expects logits (n, k), got shape {outputs.shape}")
        n = outputs.shape[0]
        if targets.ndim == 1 and targets.shape[0] != n:
            raise ValueError(f"{n} outputs but {targets.shape[0]} labels")
        if targets.ndim != 1 and targets.shape != outputs.shape:
            raise ValueError(f"targets {targets.shape} do not match outputs {outputs.shape}")
        shifted = self._scratch("shifted", outputs)
        np.subtract(outputs, np.maximum.reduce(outputs, axis=1, keepdims=True), out=shifted)
        probs = self._scratch("probs", outputs)
        np.exp(shifted, out=probs)
        sums = np.add.reduce(probs, axis=1, keepdims=True)  # (n, 1), each >= 1
        probs /= sums
        log_sums = np.log(sums)
        if targets.ndim == 1:
            per_row = np.subtract(log_sums[:, 0], shifted[self._rows(n), targets])  # -log p_c
            value = float(np.add.reduce(per_row, dtype=np.float64)) / n
        else:
            shifted -= log_sums  # log-probabilities
            value = -float(np.sum(targets * shifted, dtype=np.float64)) / n
        self._probs, self._targets = probs, targets
        return value

    def backward(self) -> np.ndarray:
        probs, n = self._probs, self._probs.shape[0]
        grad = self._scratch("grad", probs)
        if self._targets.ndim == 1:
            np.multiply(probs, 1.0 / n, out=grad)
            grad[self._rows(n), self._targets] -= 1.0 / n
        else:
            np.subtract(probs, self._targets, out=grad)
            grad *= 1.0 / n
        return grad

    def link(self, outputs: np.ndarray) -> np.ndarray:
        return softmax(outputs)

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.argmax(axis=1)

    def _rows(self, n: int) -> np.ndarray:
        """``arange(n)``, kept between steps (it indexes each row's target class)."""
        rows = self.__dict__.get("_rows_cache")
        if rows is None or rows.shape[0] != n:
            rows = self._rows_cache = np.arange(n)
        return rows

    def _scratch(self, key: str, like: np.ndarray) -> np.ndarray:
        bufs = self.__dict__.setdefault("_bufs", {})
        buf = bufs.get(key)
        if buf is None or buf.shape != like.shape or buf.dtype != like.dtype:
            buf = bufs[key] = np.empty_like(like)
        return buf


class BinaryCrossEntropy(Loss):
    """Mean binary cross-entropy of ``sigmoid(logits)`` against 0/1 targets.

    Written as ``max(z, 0) - z*y + log(1 + exp(-|z|))``, which equals
    ``-y log p - (1-y) log(1-p)`` but never takes the log of 0. Gradient:
    ``(sigmoid(z) - y) / N`` over the ``N`` outputs. Outputs may be ``(n,)`` or
    ``(n, 1)``; targets are broadcast to the outputs' shape.
    """

    name = "binary_cross_entropy"

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        z = outputs
        y = np.asarray(targets, dtype=z.dtype).reshape(z.shape)
        per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        self._z, self._y = z, y
        return float(per.mean(dtype=np.float64))

    def backward(self) -> np.ndarray:
        grad = sigmoid(self._z)
        grad -= self._y
        grad *= 1.0 / self._z.size
        return grad.astype(self._z.dtype, copy=False)

    def link(self, outputs: np.ndarray) -> np.ndarray:
        """Two-column probabilities ``[P(class 0), P(class 1)]``."""
        p1 = sigmoid(outputs.reshape(-1, 1))
        return np.hstack([1.0 - p1, p1])

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        return (outputs.reshape(-1) > 0).astype(np.int64)


class MeanSquaredError(Loss):
    """Squared error between outputs and targets.

    Integer labels ``(n,)`` are one-hot encoded to the outputs' width. Reductions:
    ``"mean"`` averages over every element (PyTorch's ``MSELoss``); ``"sample"``
    sums over the outputs and averages over samples (gradient ``2(a - y)/n``, the
    form seed 004 updates with); ``"sum"`` sums everything.
    """

    name = "mse"
    REDUCTIONS = ("mean", "sample", "sum")

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in self.REDUCTIONS:
            raise ValueError(f"reduction must be one of {self.REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        targets = np.asarray(targets)
        if targets.ndim == 1 and outputs.ndim == 2 and outputs.shape[1] > 1:
            targets = one_hot(targets, outputs.shape[1], dtype=outputs.dtype)
        targets = targets.reshape(outputs.shape)
        diff = outputs - targets
        self._diff = diff
        total = float(np.sum(diff * diff, dtype=np.float64))
        return total / self._denominator(outputs)

    def backward(self) -> np.ndarray:
        grad = self._diff
        grad *= 2.0 / self._denominator(grad)
        return grad

    def _denominator(self, outputs: np.ndarray) -> int:
        if self.reduction == "mean":
            return outputs.size
        if self.reduction == "sample":
            return outputs.shape[0]
        return 1

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction}

    def __repr__(self) -> str:
        return f"MeanSquaredError(reduction={self.reduction!r})"


def one_hot(labels: np.ndarray, num_classes: int, dtype: Any = np.float32) -> np.ndarray:
    """``(n,)`` integer labels -> ``(n, num_classes)`` one-hot rows."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")
    out = np.zeros((labels.shape[0], num_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


LOSSES: dict[str, type[Loss]] = {
    "cross_entropy": SoftmaxCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "mse": MeanSquaredError,
}
ALIASES = {"ce": "cross_entropy", "softmax_cross_entropy": "cross_entropy", "bce": "binary_cross_entropy",
           "mean_squared_error": "mse"}


def get(spec: str | dict[str, Any] | Loss) -> Loss:
    """A loss from its name (``"cross_entropy"``, ``"bce"``, ``"mse"``) or config dict."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
    name = ALIASES.get(name, name)
    if name not in LOSSES:
        raise ValueError(f"unknown loss {spec!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)
