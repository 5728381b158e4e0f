"""Finite-difference gradient checks: the proof that every backward pass is right.

Central differences ``(f(w + h) - f(w - h)) / 2h`` in float64 agree with a correct
analytic gradient to about ``1e-7`` relative error; a wrong one is off by far
more. Used by the test suite and by anyone adding a layer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .losses import Loss
from .model import Sequential


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max(|a|, |b|, tiny)``, elementwise-max normalised."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-8)
    return float(np.max(np.abs(a - b) / scale)) if a.size else 0.0


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to array ``x``
    (perturbed in place and restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + h
        plus = f()
        x[idx] = old - h
        minus = f()
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def check_model_gradients(model: Sequential, loss: Loss, x: np.ndarray, y: np.ndarray,
                          h: float = 1e-6) -> dict[str, float]:
    """Relative error between analytic and numerical gradients for every parameter and
    for the input (key ``"input"``). Use a float64 model and input."""
    model.train(False)  # deterministic: dropout off
    out = model.forward(x)
    loss.forward(out, y)
    model.backward(loss.backward(), input_grad=True)
    analytic = {name: g.copy() for name, _, g in model.parameters()}
    out = model.forward(x)
    loss.forward(out, y)
    analytic["input"] = np.array(model.backward(loss.backward(), input_grad=True))

    def f() -> float:
        return loss.forward(model.forward(x), y)

    errors = {name: relative_error(analytic[name], numerical_gradient(f, p, h))
              for name, p, _ in model.parameters()}
    errors["input"] = relative_error(analytic["input"], numerical_gradient(f, x, h))
    return errors
