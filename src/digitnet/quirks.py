"""The seed experiments' quirks and defects, as components like any other.

Faithful recipes must do what the seeds did, defects included; these pieces exist only for
that. Each says which seed it belongs to and what it gets wrong, and registers in the
engine's registries (:data:`~digitnet.nn.LAYERS`, :data:`~digitnet.nn.LOSSES`,
:data:`~digitnet.nn.OPTIMIZERS`), so a recipe, a run spec or a model file names it the same
way it names ``Linear`` or ``adam``. Importing :mod:`digitnet.spec` or loading a model file
imports this module, so the names resolve in any process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .nn import LAYERS, LOSSES, OPTIMIZERS
from .nn.layers import Layer, Linear
from .nn.losses import Loss, check_labels, one_hot
from .nn.optim import Optimizer, ParamTriple


@LAYERS.register(aliases=("rounded_sigmoid",))
class RoundedSigmoid(Layer):
    """Seed 001's sigmoid: ``y = sigmoid(z)`` forward, but the backward pass uses
    ``sigmoid'(round(z)) = s (1 - s)`` with ``s = sigmoid(round(z))``: the derivative at
    ``z`` rounded to an integer (lossy)."""

    activation = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._z = x
        return 0.5 * np.tanh(0.5 * x) + 0.5

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        s = 0.5 * np.tanh(0.5 * np.round(self._z)) + 0.5
        return grad_out * s * (1 - s)


@LAYERS.register()
class ScalarBiasLinear(Linear):
    """Seed 002's affine layer: the bias gradient is summed over all units into one scalar,
    ``db_j = sum_n sum_k g_nk`` for every unit ``j``, so every bias moves by the same amount."""

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        grad_in = super().backward(grad_out, need_input_grad)
        if self.use_bias:
            self.grads["bias"][...] = self.grads["bias"].sum()
        return grad_in


@LOSSES.register("unclipped_bce")
class UnclippedBinaryCrossEntropy(Loss):
    """Seed 000's loss: binary cross-entropy on *probabilities* (after a Sigmoid layer),
    ``-mean(y log a + (1 - y) log(1 - a))`` with no clipping, so ``a`` at exactly 0 or 1
    gives inf. Gradient ``-(y/a - (1-y)/(1-a)) / n``."""

    output_activation = "sigmoid"

    def outputs_for(self, n_classes: int) -> int:
        if n_classes != 2:
            raise ValueError(f"unclipped_bce needs exactly 2 classes, got {n_classes}")
        return 1

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        a = outputs.reshape(-1).astype(np.float64)
        y = check_labels(np.asarray(targets).reshape(-1), a.size, 2).astype(np.float64)
        self._a, self._y, self._shape, self._dtype = a, y, outputs.shape, outputs.dtype
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)))

    def backward(self) -> np.ndarray:
        a, y = self._a, self._y
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = -(y / a - (1 - y) / (1 - a)) / a.size
        return grad.reshape(self._shape).astype(self._dtype)


@LOSSES.register("unstable_cross_entropy")
class UnstableSoftmaxCrossEntropy(Loss):
    """Seed 002's softmax cross-entropy: ``p = exp(z) / sum(exp(z))`` *without* subtracting
    the row maximum, so large logits overflow to inf/NaN; loss ``-mean(log p_label)``,
    gradient ``(p - y) / n``."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(outputs)
            p = e / e.sum(axis=1, keepdims=True)
        self._p = p
        k = outputs.shape[1]
        self._y = one_hot(targets, k, dtype=outputs.dtype) if np.ndim(targets) == 1 else targets
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-np.sum(self._y * np.log(p), dtype=np.float64) / len(p))

    def backward(self) -> np.ndarray:
        return (self._p - self._y) / len(self._p)

    def link(self, outputs: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(outputs)
            return e / e.sum(axis=1, keepdims=True)

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.argmax(axis=1)


@OPTIMIZERS.register("fan_in_gd")
class FanInGD(Optimizer):
    """Seed 000's gradient descent: weight and bias gradients summed over the samples and
    divided by the layer's *input width* instead of the number of samples.

    With the engine's mean-reduced gradient ``g``, the seed's step is
    ``p -= lr * g * batch_size / fan_in``. The step depends on the batch size, so every batch
    must have the same size (``equal_batches``; the runner checks). No weight decay and no
    schedule: the seed had none."""

    equal_batches = True

    def __init__(self, lr: float, *, batch_size: int | None = None) -> None:
        super().__init__(lr)
        if batch_size is None or batch_size < 1:
            raise ValueError(f"fan_in_gd needs the batch size (samples per step), got {batch_size}")
        self.batch_size = int(batch_size)

    def step(self, params: Iterable[ParamTriple]) -> None:
        self.steps += 1
        params = list(params)
        fan_in = {name.rsplit(".", 1)[0]: p.shape[0] for name, p, _ in params if name.endswith(".weight")}
        for name, p, g in params:
            p -= (self.lr * self.batch_size / fan_in[name.rsplit(".", 1)[0]]) * g

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.base_lr, "batch_size": self.batch_size}
