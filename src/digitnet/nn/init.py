"""Weight initialisers.

An initialiser is a small object that, given a weight shape (``(fan_in, fan_out)`` for a
dense layer, ``(out_channels, in_channels, kh, kw)`` for a convolution) and a random
generator, returns a fresh array. Each one can describe itself as a
JSON-able dict (``config()``) so a saved model records how it was made, and
``INITIALIZERS.create`` turns a name or such a dict back into an initialiser.

Why the scale matters: with ``fan_in`` inputs of unit variance, a unit's
pre-activation has variance ``fan_in * Var(w)``. He keeps that at 2 for ReLU
(which zeroes half its inputs); Glorot balances forward and backward variance
for symmetric activations (tanh, sigmoid).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import Registry

INITIALIZERS: Registry[Initializer] = Registry("initialiser")


class Initializer:
    """Base class: ``init(shape, rng, dtype) -> array``."""

    name = "initializer"

    def __call__(
        self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32
    ) -> np.ndarray:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)``: a dense weight is ``(in, out)``; a convolution's is ``(out, in, kh,
    kw)``, each input and output channel counted once per kernel position (as PyTorch and Keras
    count them)."""
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 4:
        receptive = shape[2] * shape[3]
        return shape[1] * receptive, shape[0] * receptive
    return shape[0], shape[1]


@INITIALIZERS.register()
class Zeros(Initializer):
    name = "zeros"

    def __call__(self, shape, rng, dtype=np.float32):
        return np.zeros(shape, dtype=dtype)


@INITIALIZERS.register()
class Normal(Initializer):
    """N(mean, std^2): the seeds' ``randn * 0.01`` is ``Normal(0.01)``."""

    name = "normal"

    def __init__(self, std: float = 1.0, mean: float = 0.0):
        self.std = float(std)
        self.mean = float(mean)

    def __call__(self, shape, rng, dtype=np.float32):
        return (rng.standard_normal(shape) * self.std + self.mean).astype(dtype)

    def config(self):
        return {"name": self.name, "std": self.std, "mean": self.mean}


@INITIALIZERS.register()
class Uniform(Initializer):
    """U(low, high): seed 002 draws everything from U(-0.5, 0.5)."""

    name = "uniform"

    def __init__(self, low: float = -0.05, high: float = 0.05):
        if not low < high:
            raise ValueError(f"Uniform needs low < high, got low={low}, high={high}")
        self.low = float(low)
        self.high = float(high)

    def __call__(self, shape, rng, dtype=np.float32):
        return rng.uniform(self.low, self.high, size=shape).astype(dtype)

    def config(self):
        return {"name": self.name, "low": self.low, "high": self.high}


@INITIALIZERS.register(aliases=("he",))
class HeNormal(Initializer):
    """N(0, 2/fan_in): keeps ReLU activations at a steady scale through depth."""

    name = "he_normal"

    def __call__(self, shape, rng, dtype=np.float32):
        fan_in, _ = _fans(shape)
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


@INITIALIZERS.register()
class HeUniform(Initializer):
    """U(-a, a) with a = sqrt(6/fan_in): same variance as :class:`HeNormal`."""

    name = "he_uniform"

    def __call__(self, shape, rng, dtype=np.float32):
        fan_in, _ = _fans(shape)
        limit = np.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape).astype(dtype)


@INITIALIZERS.register(aliases=("xavier_normal",))
class GlorotNormal(Initializer):
    """N(0, 2/(fan_in+fan_out)), a.k.a. Xavier normal."""

    name = "glorot_normal"

    def __call__(self, shape, rng, dtype=np.float32):
        fan_in, fan_out = _fans(shape)
        return (rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


@INITIALIZERS.register(aliases=("glorot", "xavier", "xavier_uniform"))
class GlorotUniform(Initializer):
    """U(-a, a) with a = sqrt(6/(fan_in+fan_out)), a.k.a. Xavier uniform."""

    name = "glorot_uniform"

    def __call__(self, shape, rng, dtype=np.float32):
        fan_in, fan_out = _fans(shape)
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)
