"""One harness over every registered layer and loss (Keras style): shapes, config round trip,
fresh arrays in evaluation, finite-difference gradients; and the engine's contracts."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from digitnet.nn import (
    LAYERS,
    LOSSES,
    SGD,
    Flatten,
    Sequential,
    SoftmaxCrossEntropy,
    check_model_gradients,
    mlp,
)
from digitnet.nn.gradcheck import numerical_gradient, relative_error
from digitnet.train import fit
from tests.conftest import make_blobs

#: An example config for every registered layer (the harness fails when one is missing), and
#: the shape of one input sample where it is not ``(6,)``.
EXAMPLES = {
    "Linear": {"in_features": 6, "out_features": 4},
    "ScalarBiasLinear": {"in_features": 6, "out_features": 4, "bias_init": {"name": "uniform"}},
    "ReLU": {}, "LeakyReLU": {"alpha": 0.1}, "Sigmoid": {}, "Tanh": {}, "Softmax": {}, "ScaledTanh": {},
    "RoundedSigmoid": {}, "Dropout": {"p": 0.3},
    "Conv2D": {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
    "MaxPool2D": {"kernel_size": 2}, "AvgPool2D": {"kernel_size": 3, "stride": 2},
    "GlobalAvgPool2D": {}, "Flatten": {}, "Unflatten": {"shape": [2, 3]},
    "BatchNorm": {"num_features": 2},
}
INPUT_SHAPES = {"Conv2D": (2, 7, 6), "MaxPool2D": (2, 5, 6), "AvgPool2D": (2, 7, 6),
                "GlobalAvgPool2D": (2, 3, 4), "Flatten": (2, 3, 2), "BatchNorm": (2, 3, 3)}
EXACT_GRADIENTS = {"Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "ScaledTanh", "Softmax", "Dropout",
                   "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten", "Unflatten", "BatchNorm"}


def make(name: str, dtype=np.float64):
    config = {"type": name, **EXAMPLES[name]}
    return LAYERS.create(config, rng=np.random.default_rng(0), dtype=np.dtype(dtype))


def sample_shape(name: str) -> tuple[int, ...]:
    return INPUT_SHAPES.get(name, (EXAMPLES[name].get("in_features", 6),))


def test_every_registered_layer_has_an_example():
    assert set(LAYERS.names()) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_layer_contract(name):
    layer = make(name)
    x = np.random.default_rng(1).standard_normal((5, *sample_shape(name)))
    y = layer.forward(x)
    assert y.shape[0] == 5 and y.dtype == np.float64
    assert y.shape[1:] == layer.output_shape(sample_shape(name))  # shape inference (summaries) agrees
    g = np.random.default_rng(2).standard_normal(y.shape)
    dx = layer.backward(g)
    assert dx.shape == x.shape
    assert set(layer.grads) == set(layer.params)
    # the config rebuilds the same kind of layer with the same options
    clone = LAYERS.create(layer.config(), rng=np.random.default_rng(0), dtype=np.float64)
    assert type(clone) is type(layer) and clone.config() == layer.config()
    # in evaluation, every forward pass has its own arrays (or a view of its input)
    layer.train(False)
    a, b = layer.forward(x), layer.forward(x)
    assert a is not x or name == "Dropout"
    if not np.shares_memory(a, x):
        assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(EXACT_GRADIENTS))
def test_layer_gradients_match_finite_differences(name):
    layer = make(name)
    shape = sample_shape(name)
    rng = np.random.default_rng(3)
    head = [] if name in INPUT_SHAPES or name == "Linear" else \
        [LAYERS.create({"type": "Linear", "in_features": 6, "out_features": shape[0]}, rng=rng,
                       dtype=np.float64)]
    out = layer.output_shape(shape)
    flat = [] if len(out) == 1 else [Flatten()]
    layers = [*head, layer, *flat, LAYERS.create({"type": "Linear", "in_features": int(np.prod(out)),
                                                   "out_features": 3}, rng=rng, dtype=np.float64)]
    x = np.random.default_rng(5).standard_normal((4, *(shape if name in INPUT_SHAPES else (6,))))
    # h = 1e-5: a strided convolution's input gradient has entries near 1e-5, where the
    # rounding error of h = 1e-6 alone is a relative 1e-5
    errors = check_model_gradients(Sequential(layers), SoftmaxCrossEntropy(), x, np.array([0, 1, 2, 1]),
                                   h=1e-5)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("name", ["cross_entropy", "mse", "unstable_cross_entropy"])
def test_labels_outside_the_classes_are_an_error_in_every_multiclass_loss(name):
    loss = LOSSES.create(name)
    z = np.zeros((3, 4))
    for bad in (np.array([0, 1, 4]), np.array([0, -1, 2])):
        with pytest.raises(ValueError, match=r"labels must be in 0\.\.3"):
            loss.forward(z, bad)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "unclipped_bce"])
def test_labels_outside_zero_and_one_are_an_error_in_the_binary_losses(name):
    loss = LOSSES.create(name)
    with pytest.raises(ValueError, match="0 or 1|labels must be in 0..1"):
        loss.forward(np.full((3, 1), 0.5), np.array([0, 1, 2]))


@pytest.mark.parametrize("name", sorted(set(LOSSES.names()) - {"unclipped_bce"}))
def test_each_loss_gradient_matches_finite_differences_and_is_the_same_every_call(name):
    rng = np.random.default_rng(0)
    binary = LOSSES.get(name)().outputs_for(2) == 1
    z = rng.standard_normal((5, 1 if binary else 4))
    y = rng.integers(0, 2 if binary else 4, 5)
    loss = LOSSES.create(name)
    loss.forward(z, y)
    first = loss.backward().copy()
    np.testing.assert_array_equal(loss.backward(), first)  # backward is a function of forward
    numeric = numerical_gradient(lambda: loss.forward(z, y), z)
    assert relative_error(first, numeric) < 1e-6


def test_predict_is_reentrant_across_threads():
    model = mlp([20, 64, 3], rng=0, dtype=np.float64).eval()
    x = [np.random.default_rng(i).standard_normal((200, 20)) for i in range(8)]
    expected = [model.predict(xi) for xi in x]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(20):
            results[i] = model.predict(x[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        np.testing.assert_array_equal(results[i], expected[i])


@pytest.mark.parametrize("batch", [0, -3, 2.5])
def test_fit_validates_its_own_arguments(batch):
    x, y = make_blobs(20, d=10)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        fit(mlp([10, 3], rng=0), SoftmaxCrossEntropy(), SGD(0.1), x, y, batch_size=batch, progress=False)
