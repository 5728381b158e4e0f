"""Layer behaviour beyond gradients: shapes, buffers, dropout, configs, Sequential."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.nn import LAYERS, Dropout, Linear, ReLU, Sequential, Sigmoid, mlp


def test_linear_shape_error_is_clear():
    layer = Linear(4, 3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 4\)"):
        layer.forward(np.zeros((2, 5), dtype=np.float32))


def test_linear_without_bias_has_one_parameter():
    layer = Linear(4, 3, bias=False, rng=np.random.default_rng(0))
    assert list(layer.params) == ["weight"]
    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["weight"])


def test_float32_by_default_and_input_cast():
    model = mlp([4, 3, 2], rng=0)
    out = model.forward(np.ones((2, 4), dtype=np.uint8))
    assert out.dtype == np.float32
    assert all(p.dtype == np.float32 for _, p, _ in model.parameters())


def test_sigmoid_is_stable_for_huge_inputs():
    y = Sigmoid().forward(np.array([[-1e4, 0.0, 1e4]], dtype=np.float32))
    np.testing.assert_allclose(y, [[0.0, 0.5, 1.0]])


def test_dropout_train_and_eval():
    drop = Dropout(0.5, rng=np.random.default_rng(0))
    x = np.ones((1000, 10), dtype=np.float32)
    y = drop.forward(x)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert abs(y.mean() - 1.0) < 0.05  # inverted: expectation preserved
    drop.train(False)
    assert drop.forward(x) is x
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_same_seed_same_weights_different_seed_different():
    a, b, c = mlp([5, 4, 3], rng=7), mlp([5, 4, 3], rng=7), mlp([5, 4, 3], rng=8)
    for (_, pa, _), (_, pb, _), (_, _, _) in zip(a.parameters(), b.parameters(),
                                                  c.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a.parameters()[0][1], c.parameters()[0][1])


def test_parameters_are_named_and_listed_once():
    model = mlp([5, 4, 3], dropout=0.2, rng=0)
    assert [n for n, _, _ in model.parameters()] == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert model.num_parameters == 5 * 4 + 4 + 4 * 3 + 3


def test_config_round_trip_and_state_dict():
    model = mlp([5, 4, 3], activation="tanh", output_activation="sigmoid", bias=False, rng=0)
    clone = Sequential.from_config(model.config())
    clone.load_state_dict(model.state_dict())
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), clone.predict(x))
    with pytest.raises(ValueError, match="expected shape"):
        clone.load_state_dict({**model.state_dict(), "0.weight": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="missing"):
        clone.load_state_dict({})
    with pytest.raises(ValueError, match="unknown layer 'Conv9D'; choose one of AvgPool2D, BatchNorm"):
        LAYERS.create({"type": "Conv9D"})


def test_predict_returns_fresh_arrays():
    model = Sequential([Linear(3, 2, rng=np.random.default_rng(0)), ReLU()])
    a = model.predict(np.ones((2, 3), dtype=np.float32))
    b = model.predict(np.zeros((2, 3), dtype=np.float32))
    assert not np.shares_memory(a, b)
    assert not np.array_equal(a, b) or np.all(a == 0)


def test_mlp_rejects_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation"):
        mlp([3, 2], activation="swish")
