"""Layers: each one's forward and backward pass, written by hand.

Conventions (the whole engine follows them):

* Samples are rows: inputs and outputs are ``(batch, features)``.
* ``forward(x)`` keeps exactly what ``backward`` needs; ``backward(grad_out)``
  *overwrites* the layer's parameter gradients (they are not accumulated) and
  returns the gradient with respect to the layer's input.
* A layer owns its parameters and their gradients as name -> array pairs in
  ``self.params`` and ``self.grads``; the optimiser walks those pairs.
* Outputs and gradients are written into buffers the layer keeps and reuses
  while the batch shape stays the same, so a training step allocates nothing.
  The array ``forward`` returns is therefore valid until the next ``forward``:
  copy it if you want to keep it (``Sequential.predict`` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import init as initializers


class Layer:
    """Base class. Subclasses implement ``forward``, ``backward`` and ``config``."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True
        self._buffers: dict[str, np.ndarray] = {}

    # -- the two passes -------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    # -- bookkeeping ----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-able description from which :func:`layer_from_config` rebuilds the layer."""
        return {"type": type(self).__name__}

    def train(self, mode: bool = True) -> None:
        self.training = mode

    def _buffer(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A reusable scratch array: allocated once per (shape, dtype), then recycled."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


class Linear(Layer):
    """Affine map ``y = x @ W + b``.

    Shapes: x ``(n, in_features)``, W ``(in_features, out_features)``,
    b ``(out_features,)``, y ``(n, out_features)``. ``bias=False`` drops ``b``
    (seed 001's network has none).

    Gradients, with ``g = dL/dy``: ``dW = x.T @ g``, ``db = sum_n g``,
    ``dx = g @ W.T``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        weight_init: str | dict | initializers.Initializer = "he_normal",
        bias_init: str | dict | initializers.Initializer = "zeros",
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got {in_features}->{out_features}")
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.use_bias = bool(bias)
        self.weight_init = initializers.get(weight_init)
        self.bias_init = initializers.get(bias_init)
        self.dtype = np.dtype(dtype)
        shape = (self.in_features, self.out_features)
        self.params["weight"] = self.weight_init(shape, rng, self.dtype)
        self.grads["weight"] = np.zeros(shape, dtype=self.dtype)
        if self.use_bias:
            self.params["bias"] = self.bias_init((self.out_features,), rng, self.dtype)
            self.grads["bias"] = np.zeros(self.out_features, dtype=self.dtype)
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}->{self.out_features}) expects input of shape "
                f"(batch, {self.in_features}), got {x.shape}"
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        self._x = x
        out = self._buffer("out", (x.shape[0], self.out_features), self.dtype)
        np.matmul(x, self.params["weight"], out=out)
        if self.use_bias:
            out += self.params["bias"]
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        x = self._x
        if x is None:
            raise RuntimeError("Linear.backward called before forward")
        np.matmul(x.T, grad_out, out=self.grads["weight"])  # x.T is a view: BLAS reads it transposed
        if self.use_bias:
            np.add.reduce(grad_out, axis=0, out=self.grads["bias"])  # one sum over the batch
        if not need_input_grad:
            return None
        grad_in = self._buffer("grad_in", x.shape, self.dtype)
        np.matmul(grad_out, self.params["weight"].T, out=grad_in)
        return grad_in

    def config(self) -> dict[str, Any]:
        return {
            "type": "Linear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.use_bias,
            "weight_init": self.weight_init.config(),
            "bias_init": self.bias_init.config(),
        }


class ReLU(Layer):
    """``y = max(x, 0)``; the gradient passes where the input was positive."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = self._buffer("mask", x.shape, np.bool_)
        np.greater(x, 0, out=self._mask)
        out = self._buffer("out", x.shape, x.dtype)
        return np.maximum(x, 0, out=out)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype)
        return np.multiply(grad_out, self._mask, out=grad_in)


class LeakyReLU(Layer):
    """``y = x`` for ``x > 0`` else ``alpha * x``: never a dead unit."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        # slope = 1 where x > 0, alpha elsewhere; y = x * slope
        self._slope = self._buffer("slope", x.shape, x.dtype)
        np.greater(x, 0, out=self._slope)
        self._slope *= 1.0 - self.alpha
        self._slope += self.alpha
        out = self._buffer("out", x.shape, x.dtype)
        return np.multiply(x, self._slope, out=out)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype)
        return np.multiply(grad_out, self._slope, out=grad_in)

    def config(self) -> dict[str, Any]:
        return {"type": "LeakyReLU", "alpha": self.alpha}


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x/2)) / 2``, which never
    overflows; ``dy/dx = y (1 - y)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._buffer("out", x.shape, x.dtype)
        np.multiply(x, 0.5, out=out)
        np.tanh(out, out=out)
        out *= 0.5
        out += 0.5
        self._y = out
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype)
        np.subtract(1.0, self._y, out=grad_in)
        grad_in *= self._y
        grad_in *= grad_out
        return grad_in


class Tanh(Layer):
    """``y = tanh(x)``; ``dy/dx = 1 - y^2``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._buffer("out", x.shape, x.dtype)
        self._y = np.tanh(x, out=out)
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype)
        np.multiply(self._y, self._y, out=grad_in)
        np.subtract(1.0, grad_in, out=grad_in)
        grad_in *= grad_out
        return grad_in


class Softmax(Layer):
    """Row-wise softmax, stabilised by subtracting each row's maximum.

    Backward: ``dx = y * (g - sum(g * y, axis=1))``. For training a classifier,
    prefer the fused :class:`~digitnet.nn.losses.SoftmaxCrossEntropy` on logits;
    this layer exists for networks that need probabilities mid-graph.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._buffer("out", x.shape, x.dtype)
        np.subtract(x, x.max(axis=1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        self._y = out
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype)
        np.multiply(grad_out, self._y, out=grad_in)
        dot = grad_in.sum(axis=1, keepdims=True)
        np.subtract(grad_out, dot, out=grad_in)
        grad_in *= self._y
        return grad_in


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``p`` and
    scale the survivors by ``1/(1-p)`` so the expected output equals the input;
    in evaluation, the identity. Owns its random generator (``self.rng``) so a
    checkpoint can save and restore its state."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        scale = self._buffer("scale", x.shape, x.dtype)
        self.rng.random(dtype=scale.dtype, out=scale)
        np.greater_equal(scale, self.p, out=scale)
        scale *= 1.0 / (1.0 - self.p)
        self._scale = scale
        out = self._buffer("out", x.shape, x.dtype)
        return np.multiply(x, scale, out=out)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        if self._scale is None:
            return grad_out
        grad_in = self._buffer("grad_in", grad_out.shape, grad_out.dtype)
        return np.multiply(grad_out, self._scale, out=grad_in)

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "p": self.p}


LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls for cls in (Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Dropout)
}


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Make a custom layer class loadable from a saved model's config (a decorator)."""
    LAYER_TYPES[cls.__name__] = cls
    return cls


def layer_from_config(
    config: dict[str, Any], *, rng: np.random.Generator | None = None, dtype: Any = np.float32
) -> Layer:
    """Rebuild a layer from :meth:`Layer.config` (fresh parameters: load weights after)."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in LAYER_TYPES:
        raise ValueError(f"unknown layer type {kind!r}; known: {sorted(LAYER_TYPES)}")
    cls = LAYER_TYPES[kind]
    if cls is Linear:
        return Linear(**config, rng=rng, dtype=dtype)
    if cls is Dropout:
        return Dropout(**config, rng=rng)
    return cls(**config)
