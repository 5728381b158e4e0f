"""Finite-difference gradient checks (float64) for every layer and loss, with and without bias."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.nn import (
    BinaryCrossEntropy,
    Dropout,
    LeakyReLU,
    Linear,
    MeanSquaredError,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
    check_model_gradients,
    numerical_gradient,
    relative_error,
)

TOL = 1e-6
F64 = np.float64


def _data(n=5, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.integers(0, k, size=n)
    return x, y


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", [ReLU, LeakyReLU, Sigmoid, Tanh])
def test_each_activation_through_linear_layers(activation, bias):
    rng = np.random.default_rng(1)
    model = Sequential([Linear(6, 5, bias=bias, rng=rng, dtype=F64), activation(),
                        Linear(5, 4, bias=bias, rng=rng, dtype=F64)])
    if activation is LeakyReLU:
        model.layers[1] = LeakyReLU(0.1)
    x, y = _data()
    errors = check_model_gradients(model, SoftmaxCrossEntropy(), x, y)
    assert set(errors) == {p for p, _, _ in model.parameters()} | {"input"}
    assert max(errors.values()) < TOL, errors


def test_softmax_layer_with_mse():
    rng = np.random.default_rng(2)
    model = Sequential([Linear(6, 4, rng=rng, dtype=F64), Softmax()])
    x, y = _data()
    errors = check_model_gradients(model, MeanSquaredError(), x, y)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("reduction", ["mean", "sample", "sum"])
def test_mse_with_sigmoid_outputs(reduction):
    rng = np.random.default_rng(3)
    model = Sequential([Linear(6, 5, rng=rng, dtype=F64), Sigmoid(),
                        Linear(5, 4, bias=False, rng=rng, dtype=F64), Sigmoid()])
    x, y = _data()
    errors = check_model_gradients(model, MeanSquaredError(reduction), x, y)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("bias", [True, False])
def test_binary_cross_entropy_from_logits(bias):
    rng = np.random.default_rng(4)
    model = Sequential([Linear(6, 3, bias=bias, rng=rng, dtype=F64), Tanh(),
                        Linear(3, 1, bias=bias, rng=rng, dtype=F64)])
    x, _ = _data()
    y = np.array([0, 1, 1, 0, 1], dtype=F64)
    errors = check_model_gradients(model, BinaryCrossEntropy(), x, y)
    assert max(errors.values()) < TOL, errors


def test_cross_entropy_with_soft_targets():
    rng = np.random.default_rng(5)
    model = Sequential([Linear(6, 4, rng=rng, dtype=F64)])
    x, _ = _data()
    t = rng.random((5, 4))
    t /= t.sum(axis=1, keepdims=True)
    errors = check_model_gradients(model, SoftmaxCrossEntropy(), x, t)
    assert max(errors.values()) < TOL, errors


def test_dropout_gradient_with_fixed_mask():
    """In training mode the mask is random; with the generator re-seeded before each
    forward, the mask is fixed and the gradient must match finite differences."""
    drop = Dropout(0.4, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 7))
    w = np.random.default_rng(2).standard_normal((4, 7))

    def f():
        drop.rng = np.random.default_rng(0)
        return float(np.sum(drop.forward(x) * w))

    f()
    analytic = drop.backward(w.copy())
    numeric = numerical_gradient(f, x)
    assert relative_error(analytic, numeric) < TOL


def test_gradcheck_catches_a_wrong_gradient():
    """The check itself must be able to fail: break ReLU's backward and see it."""

    class BrokenReLU(ReLU):
        def backward(self, grad_out, need_input_grad=True):
            return grad_out * 1.0  # forgets the mask

    rng = np.random.default_rng(6)
    model = Sequential([Linear(6, 5, rng=rng, dtype=F64), BrokenReLU(),
                        Linear(5, 4, rng=rng, dtype=F64)])
    x, y = _data()
    assert max(check_model_gradients(model, SoftmaxCrossEntropy(), x, y).values()) > 1e-3
