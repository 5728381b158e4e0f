"""Losses: known values, stability at extreme logits, links and label predictions."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.nn import BinaryCrossEntropy, MeanSquaredError, SoftmaxCrossEntropy, losses, one_hot


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_finite_for_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [5.0, 5.0, 5.0]], dtype=dtype)
    y = np.array([1, 1, 2])
    loss = SoftmaxCrossEntropy()
    value = loss.forward(z, y)
    grad = loss.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    # first row is confidently wrong by 2e4 nats; rows 2 and 3 cost ~0 and log(3)
    assert value == pytest.approx((2e4 + 0 + np.log(3)) / 3, rel=1e-5)
    assert grad.dtype == dtype


def test_cross_entropy_value_and_gradient_by_hand():
    z = np.array([[0.0, 0.0]])
    loss = SoftmaxCrossEntropy()
    assert loss.forward(z, np.array([0])) == pytest.approx(np.log(2))
    np.testing.assert_allclose(loss.backward(), [[-0.5, 0.5]])


def test_bce_finite_for_huge_logits():
    z = np.array([[1e4], [-1e4], [0.0]], dtype=np.float32)
    y = np.array([0.0, 1.0, 1.0])
    loss = BinaryCrossEntropy()
    value = loss.forward(z, y)
    assert value == pytest.approx((1e4 + 1e4 + np.log(2)) / 3, rel=1e-5)
    assert np.all(np.isfinite(loss.backward()))


def test_bce_link_gives_two_columns():
    p = BinaryCrossEntropy().link(np.array([[0.0], [100.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5], [0.0, 1.0]], atol=1e-12)


def test_mse_reductions():
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    y = np.array([1, 1])  # one-hot: [[0,1],[0,1]]
    assert MeanSquaredError("mean").forward(a, y) == pytest.approx(3 / 4)
    assert MeanSquaredError("sample").forward(a, y) == pytest.approx(3 / 2)
    assert MeanSquaredError("sum").forward(a, y) == pytest.approx(3)
    with pytest.raises(ValueError, match="reduction"):
        MeanSquaredError("median")


def test_softmax_helper_is_stable():
    p = losses.softmax(np.array([[1e4, 0.0, -1e4]], dtype=np.float32))
    np.testing.assert_allclose(p, [[1.0, 0.0, 0.0]])


def test_one_hot_rejects_out_of_range():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="labels must be in"):
        one_hot(np.array([3]), 3)


def test_registry_by_name_and_unknown():
    assert isinstance(losses.LOSSES.create("ce"), SoftmaxCrossEntropy)
    assert losses.LOSSES.create({"name": "mse", "reduction": "sample"}).reduction == "sample"
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.LOSSES.create("hinge")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_one_hot_targets_equal_labels_and_match_softmax_gradient(dtype):
    rng = np.random.default_rng(3)
    z = rng.normal(scale=4.0, size=(7, 5)).astype(dtype)
    y = rng.integers(0, 5, size=7)
    by_label, by_prob = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    v1, v2 = by_label.forward(z, y), by_prob.forward(z, one_hot(y, 5, dtype=dtype))
    g1, g2 = by_label.backward(), by_prob.backward()
    p = losses.softmax(z.astype(np.float64))
    expected = -np.mean(np.log(p[np.arange(7), y]))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert v1 == pytest.approx(expected, rel=tol) and v2 == pytest.approx(expected, rel=tol)
    np.testing.assert_allclose(g1, (p - one_hot(y, 5, dtype=np.float64)) / 7, atol=tol)
    np.testing.assert_allclose(g2, g1, atol=tol)
    assert g1.dtype == dtype


def test_cross_entropy_follows_batch_size_and_checks_labels():
    loss = SoftmaxCrossEntropy()
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3)).astype(np.float32)
    loss.forward(z[:2], np.array([2, 2]))
    assert loss.backward().shape == (2, 3)
    with pytest.raises(ValueError, match="2 outputs but labels of shape"):
        loss.forward(z[:2], np.array([0, 1, 2]))
