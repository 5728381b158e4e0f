"""The training loop: learning, determinism, checkpoint/resume, early stopping."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.data import Normalizer
from digitnet.nn import BinaryCrossEntropy, SoftmaxCrossEntropy, mlp, optim
from digitnet.train import evaluate, fit
from tests.conftest import make_blobs


def xor_data():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 8, dtype=np.float32)
    y = np.array([0, 1, 1, 0] * 8)
    return x, y


def test_toy_problem_reaches_full_training_accuracy():
    """XOR is not linearly separable: a hidden layer must learn it, to 100%."""
    x, y = xor_data()
    model = mlp([2, 16, 2], activation="tanh", rng=0)
    history = fit(model, SoftmaxCrossEntropy(), optim.Adam(0.05), x, y, epochs=150,
                  batch_size=8, progress=False)
    assert history.loss[-1] < history.loss[0]
    _, acc = evaluate(model, SoftmaxCrossEntropy(), x, y)
    assert acc == 1.0


def test_binary_full_batch_learns():
    x, y = make_blobs(200, n_classes=2, d=20)
    model = mlp([20, 8, 1], rng=0)
    norm = Normalizer("unit").fit(x)
    fit(model, BinaryCrossEntropy(), optim.SGD(0.5), x, y, epochs=60, batch_size=None,
        preprocess=norm, progress=False)
    assert evaluate(model, BinaryCrossEntropy(), x, y, preprocess=norm)[1] == 1.0


def _train(epochs, seed=0, **kw):
    x, y = make_blobs(240, n_classes=3, d=30)
    model = mlp([30, 16, 3], dropout=0.2, rng=seed)
    opt = optim.Adam(1e-2, schedule={"name": "cosine", "epochs": 4})
    norm = Normalizer("unit").fit(x)
    history = fit(model, SoftmaxCrossEntropy(), opt, x, y, epochs=epochs, batch_size=32,
                  preprocess=norm, validation_data=(x[:40], y[:40]), seed=seed,
                  progress=False, **kw)
    return model, history


def test_same_seed_gives_bit_identical_weights():
    a, ha = _train(3)
    b, hb = _train(3)
    for (_, pa, _), (_, pb, _) in zip(a.parameters(), b.parameters(), strict=True):
        assert np.array_equal(pa, pb)
    assert ha.loss == hb.loss
    c, _ = _train(3, seed=1)
    assert not np.array_equal(a.parameters()[0][1], c.parameters()[0][1])


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path):
    ckpt = tmp_path / "ckpt.npz"
    full, full_hist = _train(4)

    class Interrupt(Exception):
        pass

    def stop_after_two(epoch, history):
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        _train(4, checkpoint=ckpt, on_epoch_end=stop_after_two)
    assert ckpt.exists()
    resumed, hist = _train(4, checkpoint=ckpt, resume=True)
    for (_, pa, _), (_, pb, _) in zip(full.parameters(), resumed.parameters(), strict=True):
        assert np.array_equal(pa, pb)
    assert hist.epoch == [1, 2, 3, 4]
    assert hist.loss == full_hist.loss


def test_early_stopping_restores_best_weights():
    x, y = make_blobs(120, n_classes=3, d=30)
    xv, yv = make_blobs(60, n_classes=3, d=30, seed=5)
    yv = (yv + 1) % 3  # validation labels disagree with training: val loss rises
    model = mlp([30, 16, 3], rng=0)
    norm = Normalizer("unit").fit(x)
    snapshots = {}
    history = fit(model, SoftmaxCrossEntropy(), optim.Adam(1e-2), x, y, epochs=50,
                  batch_size=16, preprocess=norm, validation_data=(xv, yv), early_stopping=3,
                  progress=False,
                  on_epoch_end=lambda e, h: snapshots.__setitem__(e, model.state_dict()))
    assert history.stopped_early
    assert len(history.epoch) < 50
    best = history.best_epoch
    assert history.val_loss[best - 1] == min(history.val_loss)
    for name, p in model.state_dict().items():
        np.testing.assert_array_equal(p, snapshots[best][name])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_reported():
    x, y = make_blobs(64, n_classes=2, d=10)
    model = mlp([10, 4, 2], rng=0)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, SoftmaxCrossEntropy(), optim.SGD(1e30), x.astype(np.float32) * 1e10, y,
            epochs=3, batch_size=8, progress=False)


def test_bad_arguments():
    x, y = make_blobs(10, d=10)
    model = mlp([10, 3], rng=0)
    with pytest.raises(ValueError, match="samples"):
        fit(model, SoftmaxCrossEntropy(), optim.SGD(0.1), x, y[:5], progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, SoftmaxCrossEntropy(), optim.SGD(0.1), x, y, epochs=0, progress=False)


def test_shuffled_batches_cover_every_sample_once_and_scale_it():
    from digitnet.train import _Batches

    x, y = make_blobs(n=103, n_classes=3, d=20)
    norm = Normalizer("unit").fit(x)
    order = np.random.default_rng(5).permutation(len(x))
    batches = _Batches(x, y, 25, norm, np.dtype(np.float32))
    xs, ys = [], []
    for xb, yb in batches(order):
        assert xb.dtype == np.float32 and len(xb) == len(yb) <= 25
        xs.append(xb.copy())
        ys.append(yb.copy())
    np.testing.assert_array_equal(np.concatenate(ys), y[order])
    np.testing.assert_allclose(np.concatenate(xs), x[order] / np.float32(255), rtol=1e-6)
    assert [len(b) for b in ys] == [25, 25, 25, 25, 3]


def test_diagnostics_show_gradients_updates_and_dead_or_saturated_units():
    x, y = make_blobs(200, n_classes=3, d=30)
    norm = Normalizer("unit").fit(x)
    model = mlp([30, 16, 16, 3], activation="sigmoid", weight_init={"name": "normal", "std": 3.0}, rng=0)
    h = fit(model, SoftmaxCrossEntropy(), optim.SGD(0.1), x, y, epochs=2, batch_size=20, preprocess=norm,
            diagnostics=True, progress=False)
    assert len(h.diagnostics) == 2 and set(h.diagnostics[0]["layers"]) == {"0.weight", "2.weight", "4.weight"}
    last = h.diagnostics[-1]
    assert all(v["grad_norm"] > 0 and 0 < v["update_ratio"] < 1 for v in last["layers"].values())
    assert last["units"]["1"]["measure"] == "saturated" and last["units"]["1"]["fraction"] > 0.5
    # a ReLU layer whose units never fire: all dead
    dead = mlp([30, 8, 3], rng=0)
    dead.layers[0].params["bias"][...] = -1e3
    h = fit(dead, SoftmaxCrossEntropy(), optim.SGD(0.01), x, y, epochs=1, batch_size=50, preprocess=norm,
            diagnostics=True, progress=False)
    assert h.diagnostics[0]["units"]["1"] == {"kind": "ReLU", "measure": "dead", "fraction": 1.0}
    # diagnostics only look: the weights are those of a run without them
    a, b = mlp([30, 8, 3], rng=1), mlp([30, 8, 3], rng=1)
    for model, flag in ((a, True), (b, False)):
        fit(model, SoftmaxCrossEntropy(), optim.Adam(0.01), x, y, epochs=2, batch_size=32, preprocess=norm,
            diagnostics=flag, progress=False)
    for (_, pa, _), (_, pb, _) in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)
