"""Batch normalisation, for feature vectors and for images.

Ioffe and Szegedy (2015): each channel is standardised by the statistics of the batch it is
in, then scaled and shifted by two trained parameters. Its running statistics are state,
not parameters: saved with the model (``layer.buffers``), restored on resume, and never
touched by the optimiser.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import LAYERS, Config, Layer, Shape
from .threads import over_blocks


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum(a * b)`` per channel (axis 1) of two ``(n, C)`` or ``(n, C, H, W)`` arrays, in one
    pass and without the product as a temporary."""
    return np.einsum("nc,nc->c" if a.ndim == 2 else "nchw,nchw->c", a, b)


@LAYERS.register()
class BatchNorm(Layer):
    """Batch normalisation over the channel axis of x ``(n, C)`` or ``(n, C, H, W)``.

    Training, per channel over the ``M`` values it has in the batch (``n``, or ``n*H*W``)::

        mu = mean(x),  var = mean((x - mu)^2),  xhat = (x - mu) / sqrt(var + eps)
        y = gamma * xhat + beta
        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

    Evaluation: ``xhat`` from ``running_mean`` and ``running_var`` instead (the running
    variance is the unbiased one, as in PyTorch, whose defaults ``momentum = 0.1`` and
    ``eps = 1e-5`` these are).

    Gradients in training, with ``g = dL/dy`` and means over the ``M`` values of a channel::

        dgamma = sum(g * xhat),  dbeta = sum(g)
        dx = gamma / sqrt(var + eps) * (g - mean(g) - xhat * mean(g * xhat))

    (every ``x`` moves the batch mean and variance, hence the two subtracted terms); in
    evaluation the statistics are constants and ``dx = g * gamma / sqrt(running_var + eps)``.
    gamma, beta, running_mean and running_var are ``(C,)``.
    """

    def __init__(self, num_features: int, *, momentum: float = 0.1, eps: float = 1e-5,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        if int(num_features) < 1:
            raise ValueError(f"BatchNorm needs a positive number of features, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        if not eps > 0:
            raise ValueError(f"BatchNorm eps must be > 0, got {eps}")
        self.num_features, self.momentum, self.eps = int(num_features), float(momentum), float(eps)
        self.dtype = np.dtype(dtype)
        c = self.num_features
        self.params["gamma"] = np.ones(c, dtype=self.dtype)
        self.params["beta"] = np.zeros(c, dtype=self.dtype)
        self.grads["gamma"] = np.zeros(c, dtype=self.dtype)
        self.grads["beta"] = np.zeros(c, dtype=self.dtype)
        self.buffers["running_mean"] = np.zeros(c, dtype=self.dtype)
        self.buffers["running_var"] = np.ones(c, dtype=self.dtype)

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        if len(input_shape) not in (1, 3):
            raise ValueError(f"BatchNorm takes (features,) or (channels, height, width) inputs, got "
                             f"{tuple(input_shape)}")
        config = {**config, "num_features": config.get("num_features", input_shape[0])}
        if config["num_features"] != input_shape[0]:
            raise ValueError(f"num_features is {config['num_features']!r}, but its input has "
                             f"{input_shape[0]} channels")
        return config, tuple(input_shape)

    def _axes(self, x: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The axes a channel's statistics run over, and the shape that broadcasts ``(C,)``."""
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) expects (n, {self.num_features}) or "
                             f"(n, {self.num_features}, height, width) inputs, got {x.shape}")
        if x.ndim == 2:
            return (0,), (1, self.num_features)
        return (0, 2, 3), (1, self.num_features, 1, 1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        axes, shape = self._axes(x)
        x = x.astype(self.dtype, copy=False)
        training, c = self.training, self.num_features
        m = x.size // c
        gamma, beta = self.params["gamma"], self.params["beta"]
        mean = np.empty(c, self.dtype) if training else self.buffers["running_mean"]
        var = np.empty(c, self.dtype) if training else self.buffers["running_var"]
        inv_std = np.empty(c, self.dtype)
        d, y = np.empty_like(x), np.empty_like(x)

        def normalise(block: slice) -> None:  # the formula for a block of channels
            def per(v: np.ndarray) -> np.ndarray:
                return v[block].reshape((1, -1) + shape[2:])

            xb, db = x[:, block], d[:, block]
            if training:
                mean[block] = np.add.reduce(xb, axis=axes) / m
            np.subtract(xb, per(mean), out=db)  # d = x - mu
            if training:
                var[block] = _channel_dot(db, db) / m  # mean((x - mu)^2)
            inv_std[block] = 1.0 / np.sqrt(var[block] + self.eps)
            yb = np.multiply(db, per(gamma * inv_std), out=y[:, block])  # gamma * xhat, xhat = d * inv_std
            yb += per(beta)

        over_blocks(c, normalise, x.size)
        if training:
            b = self.momentum
            self.buffers["running_mean"] *= 1.0 - b
            self.buffers["running_mean"] += b * mean
            self.buffers["running_var"] *= 1.0 - b
            self.buffers["running_var"] += (b * m / max(m - 1, 1)) * var
        self._d, self._inv_std, self._axes_used, self._batch_stats = d, inv_std, axes, training
        return y

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        g, d, inv_std, axes = grad_out, self._d, self._inv_std, self._axes_used
        shape = (1, -1) + (1,) * (g.ndim - 2)
        m = g.size // self.num_features
        scale = self.params["gamma"] * inv_std
        dx = np.empty_like(g) if need_input_grad else None

        def gradients(block: slice) -> None:  # the formulas for a block of channels
            gb, db = g[:, block], d[:, block]
            sum_g = np.add.reduce(gb, axis=axes)
            sum_gx = _channel_dot(gb, db) * inv_std[block]  # sum(g * xhat), xhat = d * inv_std
            self.grads["beta"][block], self.grads["gamma"][block] = sum_g, sum_gx
            if dx is None:
                return
            k = scale[block]
            out = np.multiply(gb, k.reshape(shape), out=dx[:, block])
            if self._batch_stats:  # dx = scale * (g - mean(g) - xhat * mean(g * xhat))
                out -= db * (k * inv_std[block] * sum_gx / m).reshape(shape)
                out -= (k * sum_g / m).reshape(shape)

        over_blocks(self.num_features, gradients, g.size)
        return dx

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "num_features": self.num_features, "momentum": self.momentum,
                "eps": self.eps}
