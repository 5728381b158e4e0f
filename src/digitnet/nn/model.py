"""``Sequential``: layers applied in order, and the one place that lists a model's parameters.

Training a ``Sequential`` by hand is four lines::

    out = model.forward(x)                 # (n, k) raw outputs
    value = loss.forward(out, y)           # scalar
    model.backward(loss.backward())        # fills every layer's grads
    optimizer.step(model.parameters())     # updates in place
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .layers import (
    Dropout,
    Layer,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    layer_from_config,
)

ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "softmax": Softmax,
}


class Sequential:
    """A stack of layers. ``forward`` runs them first to last, ``backward`` last to first."""

    def __init__(self, layers: Sequence[Layer] = (), *more: Layer) -> None:
        if isinstance(layers, Layer):
            layers = [layers, *more]
        self.layers: list[Layer] = list(layers)
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer objects, got {type(layer).__name__}")

    # -- passes ---------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs ``(n, k)`` for inputs ``(n, d)``. The result is a reused buffer."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray, *, input_grad: bool = False) -> np.ndarray | None:
        """Back-propagate ``dL/doutputs``; fills every parameter gradient.

        The gradient with respect to the network's input is only computed (and
        returned) when ``input_grad=True``: training never needs it, and for
        784-wide inputs it is the largest matrix product of the backward pass.
        """
        for i in range(len(self.layers) - 1, -1, -1):
            need = input_grad or i > 0
            grad_out = self.layers[i].backward(grad_out, need_input_grad=need)
        return grad_out

    __call__ = forward

    def predict(self, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Raw outputs for ``x`` in evaluation mode, in batches, as a fresh array.

        Batches of 1,024 rows already run the matrix products at full speed while keeping
        the layers' scratch buffers small (a few MB for a 784-256-10 network)."""
        was_training = self.training
        self.eval()
        try:
            chunks = [np.array(self.forward(x[i : i + batch_size]))
                      for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        if not chunks:
            return np.empty((0, self.output_size), dtype=np.float32)
        return np.concatenate(chunks)

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output (copies) for a small batch, in evaluation mode: what the
        network 'sees' at each stage (used by plots and the web demo)."""
        was_training = self.training
        self.eval()
        outs = []
        try:
            for layer in self.layers:
                x = layer.forward(x)
                outs.append(np.array(x))
        finally:
            self.train(was_training)
        return outs

    # -- parameters ---------------------------------------------------------------------
    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, parameter, gradient)`` for every parameter, named ``"<layer>.<param>"``."""
        return [(f"{i}.{key}", layer.params[key], layer.grads[key])
                for i, layer in enumerate(self.layers) for key in layer.params]

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        for name, p, _ in self.parameters():
            yield name, p

    @property
    def num_parameters(self) -> int:
        return sum(p.size for _, p, _ in self.parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters, by name."""
        return {name: p.copy() for name, p, _ in self.parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy parameters in by name, checking that names and shapes match exactly."""
        own = {name: p for name, p, _ in self.parameters()}
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"parameter names do not match: missing {missing}, unexpected {extra}")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"parameter {name}: expected shape {p.shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"parameter {name} holds NaN or inf")
            p[...] = value

    # -- modes ----------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return all(layer.training for layer in self.layers) if self.layers else True

    def train(self, mode: bool = True) -> Sequential:
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    # -- description ----------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        for layer in self.layers:
            if isinstance(layer, Linear):
                return layer.in_features
        raise ValueError("model has no Linear layer, so no fixed input size")

    @property
    def output_size(self) -> int:
        for layer in reversed(self.layers):
            if isinstance(layer, Linear):
                return layer.out_features
        raise ValueError("model has no Linear layer, so no fixed output size")

    @property
    def dtype(self) -> np.dtype:
        for layer in self.layers:
            if isinstance(layer, Linear):
                return layer.dtype
        return np.dtype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"layers": [layer.config() for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any], *, rng: np.random.Generator | None = None,
                    dtype: Any = np.float32) -> Sequential:
        layers = config.get("layers")
        if not isinstance(layers, list) or not layers:
            raise ValueError("model config needs a non-empty 'layers' list")
        return cls([layer_from_config(c, rng=rng, dtype=dtype) for c in layers])

    def rngs(self) -> dict[str, np.random.Generator]:
        """Random generators owned by layers (dropout), by layer index, for checkpoints."""
        return {str(i): layer.rng for i, layer in enumerate(self.layers)
                if isinstance(getattr(layer, "rng", None), np.random.Generator)}

    def summary(self) -> str:
        lines = [f"{'#':>3}  {'layer':<40} {'params':>10}"]
        for i, layer in enumerate(self.layers):
            n = sum(p.size for p in layer.params.values())
            lines.append(f"{i:>3}  {layer!r:<40} {n:>10,}")
        lines.append(f"     {'total':<40} {self.num_parameters:>10,}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]


def mlp(
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    output_activation: str | None = None,
    bias: bool = True,
    weight_init: str | dict | None = None,
    bias_init: str | dict = "zeros",
    dropout: float = 0.0,
    rng: np.random.Generator | int | None = None,
    dtype: Any = np.float32,
) -> Sequential:
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``.

    ``activation`` goes after every hidden Linear layer (then ``Dropout`` if
    ``dropout > 0``); ``output_activation`` (e.g. ``"sigmoid"``) after the last one.
    Leave it ``None`` when the loss takes logits (cross-entropy). The default
    initialiser is He for ReLU-like activations and Glorot otherwise.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    if output_activation is not None and output_activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown output activation {output_activation!r}; choose one of {sorted(ACTIVATIONS)}"
        )
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    if weight_init is None:
        weight_init = "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(Linear(n_in, n_out, bias=bias, weight_init=weight_init,
                             bias_init=bias_init, rng=rng, dtype=dtype))
        last = i == len(sizes) - 2
        if not last:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63))))
        elif output_activation is not None:
            layers.append(ACTIVATIONS[output_activation]())
    return Sequential(layers)
