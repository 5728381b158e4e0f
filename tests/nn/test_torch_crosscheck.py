"""Cross-check against PyTorch autograd: same weights and batch give the same loss, input
and parameter gradients, and the same parameters after one optimiser step (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.nn import (
    BinaryCrossEntropy,
    LeakyReLU,
    Linear,
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
