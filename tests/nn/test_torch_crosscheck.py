"""Cross-check against PyTorch autograd: same weights and batch give the same loss, input
and parameter gradients, and the same parameters after one optimiser step (float64); and
100 random small CNNs (convolution, batch norm, pooling) checked the same way, running
statistics and evaluation outputs included."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.nn import (
    AvgPool2D,
    BatchNorm,
    BinaryCrossEntropy,
    Conv2D,
    Flatten,
    GlobalAvgPool2D,
    LeakyReLU,
    Linear,
    MaxPool2D,
    MeanSquaredError,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropy,
    Tanh,
    optim,
    relative_error,
)

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")
F64 = np.float64
TOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These tensors are tiny: torch's thread pool would only add its wake-ups (seconds per
    test on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def to_torch(model: Sequential) -> torch.nn.Sequential:
    """An equivalent torch network with copied weights (torch stores W as (out, in))."""
    mods = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            lin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias,
                                  dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.params["weight"].T.copy()))
                if layer.use_bias:
                    lin.bias.copy_(torch.from_numpy(layer.params["bias"]))
            mods.append(lin)
        elif isinstance(layer, LeakyReLU):
            mods.append(torch.nn.LeakyReLU(layer.alpha))
        else:
            mods.append({ReLU: torch.nn.ReLU, Sigmoid: torch.nn.Sigmoid, Tanh: torch.nn.Tanh,
                         Softmax: lambda: torch.nn.Softmax(dim=1)}[type(layer)]())
    return torch.nn.Sequential(*mods)


def torch_params(tmodel):
    """torch parameters in digitnet's order and layout: (name, array as (in, out))."""
    out = []
    for i, mod in enumerate(tmodel):
        if isinstance(mod, torch.nn.Linear):
            out.append((f"{i}.weight", mod.weight.detach().numpy().T))
            if mod.bias is not None:
                out.append((f"{i}.bias", mod.bias.detach().numpy()))
    return out


def torch_grads(tmodel):
    out = {}
    for i, mod in enumerate(tmodel):
        if isinstance(mod, torch.nn.Linear):
            out[f"{i}.weight"] = mod.weight.grad.numpy().T
            if mod.bias is not None:
                out[f"{i}.bias"] = mod.bias.grad.numpy()
    return out


def build(activation, bias=True, out_activation=None, n_out=4, seed=0):
    rng = np.random.default_rng(seed)
    layers = [Linear(8, 6, bias=bias, rng=rng, dtype=F64), activation(),
              Linear(6, n_out, bias=bias, rng=rng, dtype=F64)]
    if out_activation is not None:
        layers.append(out_activation())
    return Sequential(layers)


def data(n=7, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 8)), rng.integers(0, 4, size=n)


CASES = [
    ("ce-relu", lambda: build(ReLU), SoftmaxCrossEntropy(),
     lambda out, y: torch.nn.functional.cross_entropy(out, torch.from_numpy(y))),
    ("ce-tanh-nobias", lambda: build(Tanh, bias=False), SoftmaxCrossEntropy(),
     lambda out, y: torch.nn.functional.cross_entropy(out, torch.from_numpy(y))),
    ("ce-leaky", lambda: build(LeakyReLU), SoftmaxCrossEntropy(),
     lambda out, y: torch.nn.functional.cross_entropy(out, torch.from_numpy(y))),
    ("mse-sigmoid", lambda: build(Sigmoid, out_activation=Sigmoid), MeanSquaredError(),
     lambda out, y: torch.nn.functional.mse_loss(
         out, torch.nn.functional.one_hot(torch.from_numpy(y), 4).double())),
    ("mse-softmax", lambda: build(ReLU, out_activation=Softmax), MeanSquaredError(),
     lambda out, y: torch.nn.functional.mse_loss(
         out, torch.nn.functional.one_hot(torch.from_numpy(y), 4).double())),
    ("bce", lambda: build(Tanh, n_out=1), BinaryCrossEntropy(),
     lambda out, y: torch.nn.functional.binary_cross_entropy_with_logits(
         out.reshape(-1), torch.from_numpy((y % 2).astype(np.float64)))),
]


@pytest.mark.parametrize("name,make_model,loss,torch_loss", CASES, ids=[c[0] for c in CASES])
def test_loss_and_gradients_match_torch(name, make_model, loss, torch_loss):
    model = make_model()
    tmodel = to_torch(model)
    x, y = data()
    targets = (y % 2).astype(F64) if isinstance(loss, BinaryCrossEntropy) else y

    value = loss.forward(model.forward(x), targets)
    grad_x = model.backward(loss.backward(), input_grad=True)

    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tvalue = torch_loss(tmodel(tx), y)
    tvalue.backward()

    assert value == pytest.approx(tvalue.item(), rel=1e-10)
    assert relative_error(grad_x, tx.grad.numpy()) < TOL
    tg = torch_grads(tmodel)
    for pname, _, g in model.parameters():
        assert relative_error(g, tg[pname]) < TOL, pname


OPTIMIZERS = [
    ("sgd", lambda: optim.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    ("sgd-wd", lambda: optim.SGD(0.1, weight_decay=0.01),
     lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)),
    ("momentum", lambda: optim.SGD(0.1, momentum=0.9),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    ("nesterov", lambda: optim.SGD(0.1, momentum=0.9, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda: optim.Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    ("adam-l2", lambda: optim.Adam(0.01, weight_decay=0.1),
     lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1)),
    ("adamw", lambda: optim.AdamW(0.01, weight_decay=0.1),
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
]


@pytest.mark.parametrize("name,make_opt,make_topt", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_steps_match_torch(name, make_opt, make_topt):
    """Three steps (so momentum and Adam's moments matter) give the same parameters."""
    model = build(ReLU)
    tmodel = to_torch(model)
    opt, topt = make_opt(), make_topt(tmodel.parameters())
    loss = SoftmaxCrossEntropy()
    for step in range(3):
        x, y = data(seed=10 + step)
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step(model.parameters())

        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    for (pname, ours, _), (tname, theirs) in zip(model.parameters(), torch_params(tmodel), strict=True):
        assert pname == tname
        assert relative_error(ours, theirs) < TOL, pname
    # and the optimiser really moved the weights
    assert relative_error(model.parameters()[0][1], build(ReLU).parameters()[0][1]) > 1e-3


# --------------------------------------------------------------------------- convolutional networks
def random_cnn(seed: int) -> tuple[Sequential, tuple[int, int, int]]:
    """A small random CNN (float64): one or two blocks of Conv2D (kernel 1-3, stride 1-2,
    padding 0-1, with or without bias), maybe BatchNorm, an activation and maybe a pooling
    layer; then Flatten or GlobalAvgPool2D, maybe a hidden Linear with BatchNorm, 3 outputs."""
    rng = np.random.default_rng(seed)
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(5, 10)), int(rng.integers(5, 10))
    shape: tuple[int, ...] = (c, h, w)
    layers = []
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(1, 4))
        stride, pad = int(rng.integers(1, 3)), int(rng.integers(0, 2))
        if shape[1] + 2 * pad < k or shape[2] + 2 * pad < k:
            k, pad = 1, 0
        layers.append(Conv2D(shape[0], int(rng.integers(1, 5)), k, stride=stride, padding=pad,
                             bias=bool(rng.integers(2)), rng=rng, dtype=F64))
        shape = layers[-1].output_shape(shape)
        if rng.random() < 0.6:
            layers.append(BatchNorm(shape[0], momentum=float(rng.choice([0.1, 0.3])), dtype=F64))
        layers.append([ReLU, Tanh, Sigmoid, lambda: LeakyReLU(0.1)][int(rng.integers(4))]())
        if min(shape[1:]) >= 2 and rng.random() < 0.6:
            pool = [MaxPool2D, AvgPool2D][int(rng.integers(2))]
            layers.append(pool(2, stride=int(rng.integers(1, 3))))
            shape = layers[-1].output_shape(shape)
    layers.append(GlobalAvgPool2D() if rng.random() < 0.3 else Flatten())
    shape = layers[-1].output_shape(shape)
    if rng.random() < 0.5:
        layers += [Linear(shape[0], 5, rng=rng, dtype=F64), BatchNorm(5, dtype=F64), ReLU()]
        shape = (5,)
    layers.append(Linear(shape[0], 3, rng=rng, dtype=F64))
    return Sequential(layers, input_shape=(c, h, w)), (c, h, w)


def cnn_to_torch(model: Sequential) -> torch.nn.Sequential:
    """The same network in torch, with copied weights and running statistics."""
    mods: list[torch.nn.Module] = []
    for layer in model.layers:
        p = {k: torch.from_numpy(v.copy()) for k, v in layer.params.items()}
        if isinstance(layer, Conv2D):
            mod = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                  stride=layer.stride, padding=layer.padding, bias=layer.use_bias,
                                  dtype=torch.float64)
            with torch.no_grad():
                mod.weight.copy_(p["weight"])
                if layer.use_bias:
                    mod.bias.copy_(p["bias"])
        elif isinstance(layer, Linear):
            mod = to_torch(Sequential([layer]))[0]
        elif isinstance(layer, BatchNorm):
            kind = torch.nn.BatchNorm2d if isinstance(mods[-1], torch.nn.Conv2d) else torch.nn.BatchNorm1d
            mod = kind(layer.num_features, eps=layer.eps, momentum=layer.momentum, dtype=torch.float64)
            with torch.no_grad():
                mod.weight.copy_(p["gamma"])
                mod.bias.copy_(p["beta"])
        elif isinstance(layer, MaxPool2D):
            mod = torch.nn.MaxPool2d(layer.kernel_size, stride=layer.stride)
        elif isinstance(layer, AvgPool2D):
            mod = torch.nn.AvgPool2d(layer.kernel_size, stride=layer.stride)
        elif isinstance(layer, GlobalAvgPool2D):
            mod = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        elif isinstance(layer, Flatten):
            mod = torch.nn.Flatten()
        else:
            mod = to_torch(Sequential([layer]))[0]
        mods.append(mod)
    return torch.nn.Sequential(*mods)


def torch_layout(model: Sequential, tmodel: torch.nn.Sequential, grads: bool = False
                 ) -> dict[str, np.ndarray]:
    """torch's parameters (or their gradients) under digitnet's names and layouts."""
    out = {}
    for i, (layer, mod) in enumerate(zip(model.layers, tmodel, strict=True)):
        names = {"gamma": "weight", "beta": "bias"} if isinstance(layer, BatchNorm) else {}
        for key in layer.params:
            tensor = getattr(mod, names.get(key, key))
            value = (tensor.grad if grads else tensor).detach().numpy()
            out[f"{i}.{key}"] = value.T if isinstance(layer, Linear) and key == "weight" else value
    return out


@pytest.mark.parametrize("group", range(10))
def test_random_cnns_match_torch(group):
    """100 random small CNNs (ten per case): loss, every parameter gradient and the input
    gradient of one batch; then three SGD-with-momentum steps on both sides: parameters and
    running statistics; then evaluation outputs on new images."""
    for seed in range(10 * group, 10 * group + 10):
        model, (c, h, w) = random_cnn(seed)
        tmodel = cnn_to_torch(model)
        rng = np.random.default_rng(1000 + seed)
        x = rng.standard_normal((5, c, h, w)) * 2
        y = rng.integers(0, 3, 5)
        loss = SoftmaxCrossEntropy()
        value = loss.forward(model.forward(x), y)
        grad_x = model.backward(loss.backward(), input_grad=True)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        tvalue = torch.nn.functional.cross_entropy(tmodel(tx), torch.from_numpy(y))
        tvalue.backward()
        where = f"model {seed}: {[type(layer).__name__ for layer in model.layers]}"
        assert value == pytest.approx(tvalue.item(), rel=1e-10), where
        assert relative_error(grad_x, tx.grad.numpy()) < TOL, where
        theirs = torch_layout(model, tmodel, grads=True)
        for name, _, g in model.parameters():
            assert relative_error(g, theirs[name]) < TOL, f"{where}: {name}"

        opt = optim.SGD(0.05, momentum=0.9)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.05, momentum=0.9)
        topt.zero_grad()
        for _ in range(3):
            xb = rng.standard_normal((6, c, h, w))
            yb = rng.integers(0, 3, 6)
            loss.forward(model.forward(xb), yb)
            model.backward(loss.backward())
            opt.step(model.parameters())
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            topt.step()
        theirs = torch_layout(model, tmodel)
        for name, p, _ in model.parameters():
            assert relative_error(p, theirs[name]) < TOL, f"{where}: {name} after 3 steps"
        for layer, mod in zip(model.layers, tmodel, strict=True):
            if isinstance(layer, BatchNorm):
                assert relative_error(layer.buffers["running_mean"], mod.running_mean.numpy()) < TOL, where
                assert relative_error(layer.buffers["running_var"], mod.running_var.numpy()) < TOL, where
        x_new = rng.standard_normal((4, c, h, w))
        tmodel.eval()
        with torch.no_grad():
            expected = tmodel(torch.from_numpy(x_new)).numpy()
        assert relative_error(model.predict(x_new), expected) < TOL, f"{where}: evaluation outputs"
