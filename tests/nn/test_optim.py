"""Optimisers and schedules: rules, validation, state save/restore."""

from __future__ import annotations

import math

import numpy as np
import pytest

from digitnet.nn import optim


def _triple(value=1.0, grad=0.5):
    p = np.array([value], dtype=np.float64)
    g = np.array([grad], dtype=np.float64)
    return [("w", p, g)]


def test_plain_sgd_step():
    params = _triple()
    optim.SGD(0.1).step(params)
    assert params[0][1][0] == pytest.approx(1.0 - 0.1 * 0.5)


def test_momentum_accumulates_velocity():
    params = _triple()
    opt = optim.SGD(0.1, momentum=0.5)
    opt.step(params)  # v = 0.5
    opt.step(params)  # v = 0.75
    assert params[0][1][0] == pytest.approx(1.0 - 0.1 * 0.5 - 0.1 * 0.75)


def test_adam_first_step_is_lr_times_sign():
    params = _triple(grad=-3.0)
    optim.Adam(0.01).step(params)
    assert params[0][1][0] == pytest.approx(1.01, rel=1e-6)


def test_gradients_are_not_modified_by_weight_decay():
    params = _triple()
    optim.SGD(0.1, weight_decay=0.5).step(params)
    assert params[0][2][0] == 0.5
    assert params[0][1][0] == pytest.approx(1.0 - 0.1 * (0.5 + 0.5))


@pytest.mark.parametrize("bad", [
    lambda: optim.SGD(0), lambda: optim.SGD(0.1, momentum=1.0),
    lambda: optim.SGD(0.1, nesterov=True), lambda: optim.Adam(0.1, betas=(1.0, 0.9)),
    lambda: optim.SGD(0.1, weight_decay=-1),
])
def test_invalid_settings_are_rejected(bad):
    with pytest.raises(ValueError):
        bad()


def test_registry_by_name_and_options():
    create = optim.OPTIMIZERS.create
    assert create("momentum").momentum == 0.9
    nest = create({"name": "nesterov", "lr": 0.05})
    assert nest.nesterov and nest.base_lr == 0.05
    assert isinstance(create({"name": "adamw", "lr": 0.002}), optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of adam, adamw"):
        create("rmsprop")
    with pytest.raises(ValueError, match="optimizer 'adam' takes no option 'momentum'"):
        create({"name": "adam", "momentum": 0.9})
    assert create(create("sgd").config()).config() == create("sgd").config()  # config round trip


def test_schedules():
    assert [optim.StepDecay(2, 0.5)(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    assert optim.ExponentialDecay(0.9)(2) == pytest.approx(0.81)
    cos = optim.CosineDecay(4)
    assert cos(0) == 1.0 and cos(2) == pytest.approx(0.5) and cos(4) == pytest.approx(0.0)
    by_run = optim.CosineDecay()  # the length comes from the run
    assert by_run(2, total=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="needs the number of epochs"):
        by_run(2)
    warm = optim.CosineDecay(4, warmup=2)
    assert warm(0) == pytest.approx(1 / 3) and warm(1) == pytest.approx(2 / 3) and warm(2) == 1.0
    opt = optim.SGD(0.1, schedule={"name": "step", "step_size": 1, "gamma": 0.1})
    opt.set_epoch(2)
    assert opt.lr == pytest.approx(0.001)
    assert math.isclose(optim.SCHEDULES.create("none")(10), 1.0)
    opt = optim.Adam(0.1, schedule="cosine")
    opt.set_epoch(2, total=4)  # what fit does at the start of each epoch
    assert opt.lr == pytest.approx(0.05)


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(3) for _ in range(4)]
    p1 = np.zeros(3)
    a = optim.Adam(0.1)
    for g in grads[:2]:
        a.step([("w", p1, g)])
    meta, arrays = a.state_dict()
    b = optim.Adam(0.1)
    b.load_state_dict(meta, arrays)
    p2 = p1.copy()
    for g in grads[2:]:
        a.step([("w", p1, g)])
        b.step([("w", p2, g)])
    np.testing.assert_array_equal(p1, p2)
    with pytest.raises(ValueError, match="optimiser state is for"):
        optim.SGD(0.1).load_state_dict(meta, arrays)


@pytest.mark.parametrize("make", [
    lambda: optim.SGD(0.1, momentum=0.9, weight_decay=1e-3),
    lambda: optim.Nesterov(0.05),
    lambda: optim.Adam(1e-3, weight_decay=1e-4),
    lambda: optim.AdamW(1e-3),
])
def test_packed_update_in_blocks_on_threads_equals_one_array_at_a_time(make, monkeypatch):
    """A packed model's update runs in blocks split between two threads; every value must come
    out exactly as when each parameter is updated on its own, and the saved state likewise."""
    from digitnet.nn import threads
    from digitnet.nn.model import Sequential, mlp_layers

    monkeypatch.setenv("DIGITNET_THREADS", "2")
    monkeypatch.setattr(optim, "BLOCK", 1 << 13)  # many blocks, the last one short
    model = Sequential.from_config({"layers": mlp_layers([784, 400, 10])}, rng=0)  # 318,010 values
    assert model.num_parameters > threads.MIN_VALUES and model.num_parameters % optim.BLOCK
    loose = [(name, p.copy(), g) for name, p, g in model.parameters()]
    packed, alone = make(), make()
    rng = np.random.default_rng(1)
    for _ in range(3):
        params = model.parameters()
        for _, _, g in params:
            g[...] = rng.standard_normal(g.shape)
        assert params.flat is not None
        packed.step(params)
        alone.step(list(loose))  # a plain list: one parameter at a time
        for (_, p, _), (_, q, _) in zip(params, loose, strict=True):
            np.testing.assert_array_equal(p, q)
    a_meta, a_arrays = packed.state_dict()
    b_meta, b_arrays = alone.state_dict()
    assert a_meta == b_meta and sorted(a_arrays) == sorted(b_arrays)
    for key in a_arrays:
        np.testing.assert_array_equal(a_arrays[key], b_arrays[key])
