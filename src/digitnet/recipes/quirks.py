"""The seeds' quirks and defects, as layers, losses and an optimiser step.

Faithful recipes need to do what the seed experiments did, defects included; these
pieces exist only for that. Each says which seed it belongs to and what it gets wrong.
The layers are registered with :func:`digitnet.nn.register_layer`, so a model that uses
them can be saved and loaded like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..nn import losses, optim
from ..nn.layers import Layer, Linear, register_layer
from ..nn.losses import Loss, one_hot


@register_layer
class RoundedSigmoid(Layer):
    """Seed 001's sigmoid: ``y = sigmoid(z)`` forward, but the backward pass uses
    ``sigmoid'(round(z))``, the derivative at ``z`` rounded to an integer (lossy)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._z = x
        out = self._buffer("out", x.shape, x.dtype)
        np.multiply(x, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        s = self._buffer("s", self._z.shape, self._z.dtype)
        np.round(self._z, out=s)
        s *= 0.5
        np.tanh(s, out=s)
        s *= 0.5
        s += 0.5  # sigmoid(round(z))
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype)
        np.subtract(1.0, s, out=grad_in)
        grad_in *= s
        grad_in *= grad_out
        return grad_in


@register_layer
class ScalarBiasLinear(Linear):
    """Seed 002's affine layer: the bias gradient is summed over all units into one
    scalar, so every unit's bias moves by the same amount each step."""

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        grad_in = super().backward(grad_out, need_input_grad)
        if self.use_bias:
            self.grads["bias"][...] = self.grads["bias"].sum()
        return grad_in

    def config(self) -> dict[str, Any]:
        return {**super().config(), "type": "ScalarBiasLinear"}


class UnclippedBinaryCrossEntropy(Loss):
    """Seed 000's loss: binary cross-entropy on *probabilities* (after a Sigmoid layer),
    ``-mean(y log a + (1 - y) log(1 - a))`` with no clipping, so ``a`` at exactly 0 or 1
    gives inf. Gradient ``-(y/a - (1-y)/(1-a)) / n``."""

    name = "unclipped_bce"

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        a = outputs.reshape(-1).astype(np.float64)
        y = np.asarray(targets, dtype=np.float64).reshape(-1)
        self._a, self._y, self._shape, self._dtype = a, y, outputs.shape, outputs.dtype
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)))

    def backward(self) -> np.ndarray:
        a, y = self._a, self._y
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = -(y / a - (1 - y) / (1 - a)) / a.size
        return grad.reshape(self._shape).astype(self._dtype)


class UnstableSoftmaxCrossEntropy(Loss):
    """Seed 002's softmax cross-entropy: ``exp(z) / sum(exp(z))`` *without* subtracting
    the row maximum, so large logits overflow to inf/NaN. Gradient ``(p - y) / n``."""

    name = "unstable_cross_entropy"

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(outputs)
            p = e / e.sum(axis=1, keepdims=True)
        self._p = p
        self._y = one_hot(targets, outputs.shape[1], dtype=outputs.dtype) if targets.ndim == 1 else targets
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-np.sum(self._y * np.log(p), dtype=np.float64) / len(p))

    def backward(self) -> np.ndarray:
        return (self._p - self._y) / len(self._p)

    def predict_labels(self, outputs: np.ndarray) -> np.ndarray:
        return outputs.argmax(axis=1)


class FanInGD(optim.Optimizer):
    """Seed 000's gradient descent: weight and bias gradients summed over the samples and
    divided by the layer's *input width* instead of the number of samples.

    With the engine's mean-reduced gradient ``g``, the seed's step is
    ``lr * g * samples / fan_in``; ``samples`` is the batch size (the runner sets it, and
    refuses batches of unequal size). No weight decay or schedule: the seed had none."""

    name = "fan_in_gd"

    def __init__(self, lr: float, *, samples: int = 1) -> None:
        super().__init__(lr)
        self.samples = int(samples)

    def step(self, params: Iterable[optim.ParamTriple]) -> None:
        self.steps += 1
        params = list(params)
        fan_in = {name.rsplit(".", 1)[0]: p.shape[0] for name, p, _ in params if name.endswith(".weight")}
        for name, p, g in params:
            width = fan_in[name.rsplit(".", 1)[0]]
            p -= (self.lr * self.samples / width) * g

    def config(self) -> dict[str, Any]:
        return {**super().config(), "samples": self.samples}


QUIRK_LOSSES: dict[str, type[Loss]] = {
    c.name: c for c in (UnclippedBinaryCrossEntropy, UnstableSoftmaxCrossEntropy)
}
QUIRK_OPTIMIZERS: dict[str, type[optim.Optimizer]] = {FanInGD.name: FanInGD}


def make_loss(spec: str | dict[str, Any]) -> Loss:
    """A loss from a recipe: a seed quirk by name, else anything :func:`digitnet.nn.losses.get` knows."""
    name = spec if isinstance(spec, str) else spec.get("name")
    if name in QUIRK_LOSSES:
        kwargs = {} if isinstance(spec, str) else {k: v for k, v in spec.items() if k != "name"}
        return QUIRK_LOSSES[name](**kwargs)
    return losses.get(spec)


def make_optimizer(spec: dict[str, Any], **extra: Any) -> optim.Optimizer:
    """An optimiser from a recipe: a seed quirk by name, else :func:`digitnet.nn.optim.get`."""
    kwargs = dict(spec)
    name = kwargs.pop("name")
    if name in QUIRK_OPTIMIZERS:
        return QUIRK_OPTIMIZERS[name](**kwargs, **extra)
    return optim.get({"name": name, **kwargs})
