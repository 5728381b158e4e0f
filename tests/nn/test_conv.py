"""Convolutional layers and batch norm: the vectorised convolution against its loop
reference, finite-difference gradients over kernel sizes, strides, paddings and odd image
sizes (float64), batch norm in both modes, running statistics as saved state, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.nn import (
    SGD,
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Flatten,
    GlobalAvgPool2D,
    Linear,
    MaxPool2D,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
    Tanh,
    Unflatten,
    check_model_gradients,
    conv,
    numerical_gradient,
    relative_error,
)

F64 = np.float64
# (kernel, stride, padding, height, width): square and not, strided, padded, odd sizes
GEOMETRIES = [
    (1, 1, 0, 5, 5), (2, 1, 0, 5, 6), (3, 1, 1, 7, 7), (3, 2, 0, 7, 9), (3, 2, 1, 8, 5),
    (5, 1, 2, 6, 7), (5, 3, 1, 11, 9), ((3, 1), (1, 2), (1, 0), 6, 7), ((2, 4), 1, (0, 2), 5, 5),
]


def conv_layer(kernel, stride, padding, c_in=2, c_out=3, bias=True, seed=0) -> Conv2D:
    return Conv2D(c_in, c_out, kernel, stride=stride, padding=padding, bias=bias,
                  rng=np.random.default_rng(seed), dtype=F64)


def scale_errors(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``max |a - b| / max |b|``: finite differences' absolute error is about 1e-10 of the
    gradient's scale whatever the entry, so entries near zero are judged on that scale."""
    return float(np.max(np.abs(analytic - numeric)) / max(np.max(np.abs(numeric)), 1e-12))


@pytest.mark.parametrize("kernel,stride,padding,h,w", GEOMETRIES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_matches_the_loop_reference(kernel, stride, padding, h, w, bias):
    layer = conv_layer(kernel, stride, padding, bias=bias)
    x = np.random.default_rng(1).standard_normal((3, 2, h, w))
    y = layer.forward(x)
    expected = conv.conv2d_reference(x, layer.params["weight"], layer.params.get("bias"), layer.stride,
                                     layer.padding)
    assert y.shape == expected.shape == (3, 3, *layer.output_shape((2, h, w))[1:])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    layer.train(False)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,padding,h,w", GEOMETRIES)
@pytest.mark.parametrize("channels", [(2, 3), (3, 2)])
def test_conv_gradients_match_finite_differences(kernel, stride, padding, h, w, channels):
    """Every geometry, both ways of computing dx (col2im; and, at stride 1 where it is the
    cheaper, a convolution with the turned kernel), in training mode (the reused buffers)
    and in evaluation."""
    layer = conv_layer(kernel, stride, padding, *channels)
    x = np.random.default_rng(2).standard_normal((2, channels[0], h, w))
    out_shape = layer.forward(x).shape
    weights = np.random.default_rng(3).standard_normal(out_shape)  # loss = sum(y * weights)

    def f() -> float:
        return float(np.sum(layer.forward(x) * weights))

    for training in (True, False):
        layer.train(training)
        f()
        dx = layer.backward(weights.copy()).copy()
        grads = {k: g.copy() for k, g in layer.grads.items()}
        assert scale_errors(dx, numerical_gradient(f, x)) < 1e-8
        for name, p in layer.params.items():
            assert scale_errors(grads[name], numerical_gradient(f, p)) < 1e-8, name


def test_both_input_gradients_agree_and_each_is_chosen_where_it_is_cheaper():
    same = conv_layer(3, 1, 1, c_in=4, c_out=4)  # same size, same channels: the convolution
    assert same._input_grad_is_a_convolution(9, 7)
    assert not conv_layer(5, 1, 0, c_in=6, c_out=16)._input_grad_is_a_convolution(14, 14)  # LeNet's C3
    assert not conv_layer(3, 2, 1, c_in=4, c_out=4)._input_grad_is_a_convolution(9, 7)  # strided
    x = np.random.default_rng(17).standard_normal((3, 4, 9, 7))
    g = np.random.default_rng(18).standard_normal(same.forward(x).shape)
    by_convolution = same.backward(g).copy()
    same.forward(x)
    same._input_grad_is_a_convolution = lambda h, w: False  # type: ignore[method-assign]
    np.testing.assert_allclose(same.backward(g), by_convolution, rtol=1e-12, atol=1e-12)


def test_im2col_and_col2im_are_adjoint():
    """<im2col(x), c> == <x, col2im(c)> for every geometry: col2im really is the transpose."""
    rng = np.random.default_rng(4)
    for kernel, stride, padding, h, w in GEOMETRIES:
        layer = conv_layer(kernel, stride, padding)
        x = rng.standard_normal((2, 2, h, w))
        cols = conv.im2col(x, layer.kernel_size, layer.stride, layer.padding)
        c = rng.standard_normal(cols.shape)
        back = conv.col2im(c, x.shape, layer.kernel_size, layer.stride, layer.padding)
        assert np.vdot(cols, c) == pytest.approx(np.vdot(x, back), rel=1e-12)


def test_evaluation_in_pieces_gives_the_training_forward(monkeypatch):
    monkeypatch.setattr(conv, "EVAL_COLUMN_ELEMENTS", 300)  # a few images per piece
    layer = conv_layer(3, 1, 1)
    x = np.random.default_rng(5).standard_normal((7, 2, 6, 5))
    trained = layer.forward(x).copy()
    layer.train(False)
    np.testing.assert_allclose(layer.forward(x), trained, rtol=1e-13)


def test_conv_backward_runs_once_per_forward():
    layer = conv_layer(3, 1, 1)
    x = np.random.default_rng(6).standard_normal((2, 2, 5, 5))
    g = np.ones(layer.forward(x).shape)
    layer.backward(g)
    with pytest.raises(RuntimeError, match="once per forward"):
        layer.backward(g)


def test_conv_input_checks_and_shape_inference():
    layer = Conv2D(3, 4, 5, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"expects images of shape \(n, 3, height, width\)"):
        layer.forward(np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="does not fit 4x4"):
        layer.forward(np.zeros((2, 3, 4, 4), np.float32))
    assert layer.output_shape((3, 28, 28)) == (4, 24, 24)
    config, shape = Conv2D.infer({"type": "Conv2D", "out_channels": 8, "padding": 1, "stride": 2},
                                 (1, 28, 28))
    assert config["in_channels"] == 1 and shape == (8, 14, 14)
    with pytest.raises(ValueError, match="takes images"):
        Conv2D.infer({"type": "Conv2D", "out_channels": 8}, (784,))
    with pytest.raises(ValueError, match="kernel_size must be"):
        Conv2D(1, 2, [3, 3, 3])
    with pytest.raises(ValueError, match="padding must be >= 0"):
        Conv2D(1, 2, 3, padding=-1)


def test_conv_weights_are_initialised_by_fan_in_of_a_whole_window():
    layer = Conv2D(16, 64, 5, rng=np.random.default_rng(0))  # He: std = sqrt(2 / (16 * 25))
    assert layer.params["weight"].shape == (64, 16, 5, 5)
    assert layer.params["weight"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.05)


# --------------------------------------------------------------------------- pooling
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("kernel,stride,h,w", [(2, None, 6, 6), (2, None, 7, 5), (3, 2, 7, 9), (2, 1, 5, 6),
                                               ((2, 3), (1, 2), 6, 7)])
def test_pooling_gradients_match_finite_differences(cls, kernel, stride, h, w):
    layer = cls(kernel, stride=stride)
    x = np.random.default_rng(7).standard_normal((2, 3, h, w))
    y = layer.forward(x)
    assert y.shape[1:] == layer.output_shape((3, h, w))
    weights = np.random.default_rng(8).standard_normal(y.shape)

    def f() -> float:
        return float(np.sum(layer.forward(x) * weights))

    f()
    assert scale_errors(layer.backward(weights), numerical_gradient(f, x)) < 1e-8


def test_max_pool_values_and_ties_go_to_the_first_maximum():
    x = np.array([[[[1.0, 5.0, 2.0, 2.0],
                    [3.0, 0.0, 2.0, 2.0]]]])
    pool = MaxPool2D(2)
    np.testing.assert_array_equal(pool.forward(x), [[[[5.0, 2.0]]]])
    dx = pool.backward(np.array([[[[10.0, 20.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0.0, 10.0, 20.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]])
    np.testing.assert_array_equal(AvgPool2D(2).forward(x), [[[[2.25, 2.0]]]])


def test_global_average_pool_and_flatten_round_trips():
    x = np.arange(2 * 3 * 4 * 5, dtype=F64).reshape(2, 3, 4, 5)
    gap = GlobalAvgPool2D()
    np.testing.assert_allclose(gap.forward(x), x.mean(axis=(2, 3)))
    np.testing.assert_allclose(gap.backward(np.ones((2, 3))), np.full(x.shape, 1 / 20))
    flat = Flatten()
    rows = flat.forward(x)
    assert rows.shape == (2, 60) and rows[1, 21] == x[1, 1, 0, 1]
    assert flat.backward(rows).shape == x.shape
    un = Unflatten((3, 4, 5))
    np.testing.assert_array_equal(un.forward(rows), x)
    with pytest.raises(ValueError, match=r"expects input of shape \(n, 60\)"):
        un.forward(np.zeros((2, 59)))


# --------------------------------------------------------------------------- batch norm
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 3)])
def test_batch_norm_training_gradients_match_finite_differences(shape):
    """With batch statistics every input moves the mean and variance: the full formula."""
    bn = BatchNorm(3, dtype=F64)
    bn.params["gamma"][:] = [0.5, 2.0, -1.0]
    bn.params["beta"][:] = [0.1, -0.3, 0.2]
    x = np.random.default_rng(9).standard_normal(shape) * 3 + 1
    weights = np.random.default_rng(10).standard_normal(shape)

    def f() -> float:
        return float(np.sum(np.tanh(bn.forward(x)) * weights))

    f()
    dx = bn.backward(weights * (1 - np.tanh(bn.forward(x)) ** 2))
    grads = {k: g.copy() for k, g in bn.grads.items()}
    assert scale_errors(dx, numerical_gradient(f, x)) < 1e-8
    for name in ("gamma", "beta"):
        assert scale_errors(grads[name], numerical_gradient(f, bn.params[name])) < 1e-8, name


def test_batch_norm_standardises_per_channel_and_tracks_running_statistics():
    bn = BatchNorm(2, momentum=0.5, dtype=F64)
    x = np.random.default_rng(11).standard_normal((8, 2, 3, 3)) * np.array([1.0, 4.0])[:, None, None] + 2
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)  # var / (var + eps)
    mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.5 * mu)
    np.testing.assert_allclose(bn.buffers["running_var"], 0.5 + 0.5 * var)
    bn.train(False)  # evaluation: the running statistics, not the batch's
    z = bn.forward(x)
    expected = (x - bn.buffers["running_mean"][:, None, None]) / np.sqrt(
        bn.buffers["running_var"][:, None, None] + bn.eps)
    np.testing.assert_allclose(z, expected)
    before = bn.buffers["running_mean"].copy()
    bn.forward(x)
    np.testing.assert_array_equal(bn.buffers["running_mean"], before)  # evaluation changes nothing


def test_running_statistics_are_state_not_parameters():
    model = Sequential([Conv2D(1, 2, 3, rng=np.random.default_rng(0)), BatchNorm(2), ReLU(), Flatten(),
                        Linear(2 * 3 * 3, 3, rng=np.random.default_rng(1))], input_shape=(1, 5, 5))
    names = [name for name, _, _ in model.parameters()]
    assert "1.running_mean" not in names and {"1.gamma", "1.beta"} <= set(names)
    assert [name for name, _ in model.buffers()] == ["1.running_mean", "1.running_var"]
    x = np.random.default_rng(2).standard_normal((6, 1, 5, 5)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    loss, opt = SoftmaxCrossEntropy(), SGD(0.1)
    for _ in range(3):
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step(model.parameters())
    state = model.state_dict()
    assert {"1.running_mean", "1.running_var"} <= set(state)
    assert not np.allclose(state["1.running_mean"], 0)
    clone = Sequential.from_config(model.config(), rng=5)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))  # evaluation needs the buffers
    with pytest.raises(ValueError, match="missing"):
        clone.load_state_dict({k: v for k, v in state.items() if k != "1.running_var"})


def test_model_gradients_of_a_small_cnn_in_evaluation_mode():
    rng = np.random.default_rng(12)
    model = Sequential([Unflatten((2, 7, 6)), Conv2D(2, 3, 3, padding=1, rng=rng, dtype=F64),
                        BatchNorm(3, dtype=F64), Tanh(), MaxPool2D(2),
                        Conv2D(3, 4, 2, stride=2, rng=rng, dtype=F64),
                        ReLU(), GlobalAvgPool2D(), Linear(4, 3, rng=rng, dtype=F64)], input_shape=(84,))
    model.layers[2].buffers["running_var"][:] = [0.5, 2.0, 1.5]
    x = rng.standard_normal((3, 84))
    y, loss = np.array([0, 1, 2]), SoftmaxCrossEntropy()
    errors = check_model_gradients(model, loss, x, y)  # elementwise: every entry within 1e-5
    assert max(errors.values()) < 1e-5, errors
    loss.forward(model.forward(x), y)
    dx = model.backward(loss.backward(), input_grad=True).copy()
    grads = {name: g.copy() for name, _, g in model.parameters()}

    def f() -> float:
        return loss.forward(model.forward(x), y)

    assert scale_errors(dx, numerical_gradient(f, x)) < 1e-8
    for name, p, _ in model.parameters():
        assert scale_errors(grads[name], numerical_gradient(f, p)) < 1e-8, name


# --------------------------------------------------------------------------- shapes in a model
def test_sequential_shapes_and_stopping_backward_below_the_first_parameters():
    rng = np.random.default_rng(13)
    model = Sequential([Unflatten((1, 8, 8)), Conv2D(1, 2, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2),
                        Flatten(), Linear(32, 3, rng=rng)], input_shape=(64,))
    assert model.shapes() == [(1, 8, 8), (2, 8, 8), (2, 8, 8), (2, 4, 4), (32,), (3,)]
    assert model.input_size == 64 and model.output_size == 3
    assert model.config()["input_shape"] == [64]
    assert "(n, 2, 4, 4)" in model.summary()
    x = rng.standard_normal((4, 64)).astype(np.float32)
    loss = SoftmaxCrossEntropy()
    loss.forward(model.forward(x), np.array([0, 1, 2, 0]))
    called = []
    model.layers[0].backward = lambda g, need_input_grad=True: called.append(1)  # type: ignore[method-assign]
    assert model.backward(loss.backward()) is None and called == []  # nothing to learn below the conv
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\).*takes feature vectors"):
        Sequential([Conv2D(1, 2, 3, rng=rng), Linear(2, 3, rng=rng)], input_shape=(1, 5, 5))


def test_eval_batches_shrink_for_wide_feature_maps():
    rng = np.random.default_rng(14)
    wide = Sequential([Unflatten((1, 28, 28)), Conv2D(1, 32, 3, padding=1, rng=rng), Flatten(),
                       Linear(32 * 784, 2, rng=rng)], input_shape=(784,))
    assert wide.batch_for(1024) == (1 << 23) // (32 * 784)
    assert Sequential([Linear(784, 10, rng=rng)]).batch_for(1024) == 1024
    x = rng.random((700, 784), dtype=np.float32)
    assert wide.predict(x).shape == (700, 2)


def test_relative_error_of_the_cnn_checks_can_fail():
    """The scale-relative check sees a wrong gradient: drop col2im's overlap sums."""
    layer = conv_layer(3, 2, 1)
    x = np.random.default_rng(15).standard_normal((2, 2, 7, 7))
    weights = np.random.default_rng(16).standard_normal(layer.forward(x).shape)
    dx = layer.backward(weights)
    broken = dx.copy()
    broken[:, :, ::2, ::2] *= 0.5
    numeric = numerical_gradient(lambda: float(np.sum(layer.forward(x) * weights)), x)
    assert scale_errors(dx, numeric) < 1e-8 < scale_errors(broken, numeric)
    assert relative_error(dx, numeric) < 1e-4


# --------------------------------------------------------------------------- threads
def test_work_split_over_threads_changes_no_bit(monkeypatch):
    """One training step and an evaluation pass give bit-identical results on one thread and
    on three (channel blocks; image blocks for the one-channel first convolution)."""
    from digitnet.nn import AvgPool2D, threads

    monkeypatch.setattr(threads, "MIN_VALUES", 0)  # split even these small arrays
    rng = np.random.default_rng(0)
    config = Sequential([Unflatten((1, 12, 12)), Conv2D(1, 5, 3, padding=1, rng=rng), BatchNorm(5),
                         ReLU(), MaxPool2D(2), Conv2D(5, 4, 3, padding=1, rng=rng), BatchNorm(4), ReLU(),
                         AvgPool2D(2), Conv2D(4, 6, 2, stride=2, rng=rng), Flatten(), Linear(6, 3, rng=rng)],
                        input_shape=(144,)).config()
    x = np.random.default_rng(4).standard_normal((7, 144)).astype(np.float32)
    y = np.arange(7) % 3
    results = []
    for count in ("1", "3"):
        monkeypatch.setenv("DIGITNET_THREADS", count)
        assert threads.thread_count() == int(count)
        model = Sequential.from_config(config, rng=0)
        loss = SoftmaxCrossEntropy()
        loss.forward(model.forward(x), y)
        dx = model.backward(loss.backward(), input_grad=True).copy()
        state = {name: g.copy() for name, _, g in model.parameters()} | dict(model.buffers())
        results.append((dx, state, model.predict(x)))
    (dx1, state1, out1), (dx3, state3, out3) = results
    np.testing.assert_array_equal(dx1, dx3)
    np.testing.assert_array_equal(out1, out3)
    for name in state1:
        np.testing.assert_array_equal(state1[name], state3[name], err_msg=name)


def test_over_blocks_covers_every_index_once_and_raises_what_a_block_raises(monkeypatch):
    from digitnet.nn import threads

    monkeypatch.setenv("DIGITNET_THREADS", "4")
    assert threads.blocks(10, 4) == [slice(0, 2), slice(2, 5), slice(5, 7), slice(7, 10)]
    assert threads.blocks(2, 4) == [slice(0, 1), slice(1, 2)]
    seen = np.zeros(10, dtype=int)

    def mark(block: slice) -> None:
        seen[block] += 1

    threads.over_blocks(10, mark, values=1 << 30)
    np.testing.assert_array_equal(seen, 1)

    def fail(block: slice) -> None:
        if block.start:
            raise ValueError(f"block {block.start}")

    with pytest.raises(ValueError, match="block"):
        threads.over_blocks(10, fail, values=1 << 30)


def test_a_cnn_predicts_from_several_threads_at_once(monkeypatch):
    """Evaluation keeps nothing shared between calls: eight threads predicting with one CNN
    (tiled pooling, batch norm, a convolution in pieces, work split over threads) get what
    one thread gets."""
    import threading

    from digitnet.nn import threads

    monkeypatch.setattr(threads, "MIN_VALUES", 0)
    monkeypatch.setattr(conv, "EVAL_COLUMN_ELEMENTS", 2000)
    rng = np.random.default_rng(19)
    model = Sequential([Unflatten((1, 8, 8)), Conv2D(1, 4, 3, padding=1, rng=rng), BatchNorm(4), ReLU(),
                        MaxPool2D(2), Conv2D(4, 6, 3, padding=1, rng=rng), ReLU(), AvgPool2D(2), Flatten(),
                        Linear(24, 3, rng=rng)], input_shape=(64,)).eval()
    xs = [np.random.default_rng(20 + i).standard_normal((9 + i, 64)).astype(np.float32) for i in range(8)]
    expected = [model.predict(x) for x in xs]
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(8)}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(15):
                got[i].append(model.predict(xs[i]))
        except Exception as exc:  # a thread's exception would otherwise be only a warning
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    for i in range(8):
        assert len(got[i]) == 15
        for out in got[i]:
            np.testing.assert_array_equal(out, expected[i])
