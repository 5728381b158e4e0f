"""``Sequential``: layers applied in order, and the one place that lists a model's parameters.

Training a ``Sequential`` by hand is four lines::

    out = model.forward(x)                 # (n, k) raw outputs
    value = loss.forward(out, y)           # scalar
    model.backward(loss.backward())        # fills every layer's grads
    optimizer.step(model.parameters())     # updates in place
"""

from __future__ import annotations

import contextlib
import html
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layers import LAYERS, Layer, Linear, activation_names

#: The most values one layer output of an evaluation batch holds (32 MB of float32).
EVAL_VALUES = 1 << 23


@dataclass
class FlatParameters:
    """All parameters of a model as one 1-D buffer (and their gradients as another), with where
    each one lies: ``layout`` is ``[(name, start, stop, shape)]``; ``views`` are the arrays the
    layers hold, views into the buffers."""

    params: np.ndarray
    grads: np.ndarray
    layout: list[tuple[str, int, int, tuple[int, ...]]]
    views: list[tuple[np.ndarray, np.ndarray]]


class Parameters(list):
    """``(name, parameter, gradient)`` triples, with ``flat`` set when they are views of one
    buffer (what an optimiser uses to update them all at once)."""

    def __init__(self, triples: list[tuple[str, np.ndarray, np.ndarray]],
                 flat: FlatParameters | None) -> None:
        super().__init__(triples)
        self.flat = flat


class Sequential:
    """A stack of layers. ``forward`` runs them first to last, ``backward`` last to first.

    ``input_shape`` is the shape of one input sample, such as ``(784,)`` or ``(1, 28, 28)``;
    given, every layer's output shape is checked against the next layer at once
    (:meth:`shapes`). Without it, a model whose first sized layer is a ``Linear`` still knows
    its input size (the MLPs of older model files)."""

    def __init__(self, layers: Sequence[Layer] = (), *more: Layer,
                 input_shape: Sequence[int] | None = None) -> None:

        if isinstance(layers, Layer):
            layers = [layers, *more]
        self.layers: list[Layer] = list(layers)
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer objects, got {type(layer).__name__}")
        self._input_shape: tuple[int, ...] | None = None
        if input_shape is not None:
            shape = tuple(input_shape)
            if not shape or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1
                                    for s in shape):
                raise ValueError(f"input_shape must be positive whole numbers, got {input_shape!r}")
            self._input_shape = tuple(int(s) for s in shape)
            self.shapes()  # every layer fits the one below
        self._flat: FlatParameters | None = None
        self._pack()

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
        784-wide inputs it is the largest matrix product of the backward pass. Without it,
        back-propagation stops at the first layer with parameters (layers below it, such
        as an ``Unflatten``, have nothing to learn).
        """
        stop = 0
        if not input_grad:
            stop = next((i for i, layer in enumerate(self.layers) if layer.params), len(self.layers))
        for i in range(len(self.layers) - 1, stop - 1, -1):
            grad_out = self.layers[i].backward(grad_out, need_input_grad=input_grad or i > stop)
        return grad_out if input_grad else None

    __call__ = forward

    def predict(self, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Raw outputs for ``x`` in evaluation mode, in batches, as a fresh array.

        Batches of 1,024 rows already run the matrix products at full speed while keeping
        the temporaries small (a few MB for a 784-256-10 network); a network with wider
        layers gets smaller batches (:meth:`batch_for`). A model already in evaluation mode
        is left untouched, so several threads may predict at once."""
        batch_size = self.batch_for(batch_size)
        with self.evaluating():
            chunks = [self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        if not chunks:
            return np.empty((0, self.output_size), dtype=self.dtype)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def batch_for(self, batch_size: int) -> int:
        """``batch_size``, or fewer samples where the widest layer output would make an
        evaluation batch hold more than :data:`EVAL_VALUES` values (a convolution's feature
        maps: 25,088 values per image for 32 maps of 28x28)."""
        try:
            widest = max(math.prod(s) for s in [self.input_shape, *self.shapes()])
        except ValueError:
            return batch_size
        return max(1, min(batch_size, EVAL_VALUES // widest))

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for a small batch, in evaluation mode: what the network
        'sees' at each stage (used by plots and the web demo)."""
        outs = []
        with self.evaluating():
            for layer in self.layers:
                x = layer.forward(x)
                outs.append(x)
        return outs

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Evaluation mode for the block, restoring training mode after if it was on."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            yield
        finally:
            if was_training:
                self.train()

    # -- parameters ---------------------------------------------------------------------
    def parameters(self) -> Parameters:
        """``(name, parameter, gradient)`` for every parameter, named ``"<layer>.<param>"``.

        The parameters (and their gradients) are views of one contiguous buffer each
        (``.flat``), so an optimiser can update them all with one pass per formula term."""
        triples = [(f"{i}.{key}", layer.params[key], layer.grads[key])
                   for i, layer in enumerate(self.layers) for key in layer.params]
        if not self._packed(triples):
            self._pack()
            triples = [(f"{i}.{key}", layer.params[key], layer.grads[key])
                       for i, layer in enumerate(self.layers) for key in layer.params]
        return Parameters(triples, self._flat)

    def _packed(self, triples: list[tuple[str, np.ndarray, np.ndarray]]) -> bool:
        flat = self._flat
        if flat is None:
            return not triples or len({p.dtype for _, p, _ in triples}) > 1
        return len(triples) == len(flat.layout) and all(
            p is pv and g is gv for (_, p, g), (pv, gv) in zip(triples, flat.views, strict=True))

    def _pack(self) -> None:
        """Move every parameter and gradient into one buffer of its dtype (their values kept)."""
        entries = [(f"{i}.{key}", layer, key) for i, layer in enumerate(self.layers) for key in layer.params]
        dtypes = {layer.params[key].dtype for _, layer, key in entries}
        if len(dtypes) != 1:
            self._flat = None
            return
        total, dtype = sum(layer.params[key].size for _, layer, key in entries), dtypes.pop()
        params, grads = np.empty(total, dtype=dtype), np.zeros(total, dtype=dtype)
        layout, views, start = [], [], 0
        for name, layer, key in entries:
            shape, stop = layer.params[key].shape, start + layer.params[key].size
            pv, gv = params[start:stop].reshape(shape), grads[start:stop].reshape(shape)
            pv[...], gv[...] = layer.params[key], layer.grads[key]
            layer.params[key], layer.grads[key] = pv, gv
            layout.append((name, start, stop, shape))
            views.append((pv, gv))
            start = stop
        self._flat = FlatParameters(params, grads, layout, views)

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        for name, p, _ in self.parameters():
            yield name, p

    @property
    def num_parameters(self) -> int:
        return sum(p.size for _, p, _ in self.parameters())

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        """``(name, array)`` for every layer's untrained state (batch norm's running
        statistics), named ``"<layer>.<buffer>"``; the optimiser never sees these."""
        return [(f"{i}.{key}", array) for i, layer in enumerate(self.layers)
                for key, array in getattr(layer, "buffers", {}).items()]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters and buffers, by name: everything a trained model is."""
        state = {name: p.copy() for name, p, _ in self.parameters()}
        state.update((name, b.copy()) for name, b in self.buffers())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], *, copy: bool = True) -> None:
        """Copy parameters and buffers in by name, checking that names and shapes match exactly.

        With ``copy=False`` an array of the parameter's shape and dtype becomes the parameter
        itself (a read-only memory map stays one: evaluation never writes parameters, but an
        optimiser step needs writable ones); buffers are always copied."""
        own = {name: p for name, p, _ in self.parameters()}
        buffers = dict(self.buffers())
        own.update(buffers)
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"parameter names do not match: missing {missing}, unexpected {extra}")
        for name, p in own.items():
            value = np.asarray(state[name]) if not isinstance(state[name], np.ndarray) else state[name]
            if value.shape != p.shape:
                raise ValueError(f"parameter {name}: expected shape {p.shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"parameter {name} holds NaN or inf")
            if copy or value.dtype != p.dtype or name in buffers:
                p[...] = value
            else:
                index, key = name.split(".", 1)
                self.layers[int(index)].params[key] = value

    # -- modes ----------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return any(layer.training for layer in self.layers)

    def train(self, mode: bool = True) -> Sequential:
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    # -- description ----------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input sample: as given, else ``(in_features,)`` of a first Linear."""
        if self._input_shape is not None:
            return self._input_shape
        for layer in self.layers:
            if isinstance(layer, Linear):
                return (layer.in_features,)
            if layer.params or layer.input_ndim is not None:
                break
        raise ValueError("the model has no fixed input shape: give Sequential(..., input_shape=...)")

    def shapes(self) -> list[tuple[int, ...]]:
        """The shape of one sample after each layer, from :attr:`input_shape`; a ``ValueError``
        names the first layer that does not fit the one below."""
        shape, out = self.input_shape, []
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except ValueError as exc:
                raise ValueError(f"layer {i} ({type(layer).__name__}): {exc}") from None
            out.append(shape)
        return out

    @property
    def input_size(self) -> int:
        """Values per input sample (784 for MNIST, as rows or as 1x28x28 images)."""
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        if self._input_shape is not None:
            return math.prod(self.shapes()[-1]) if self.layers else math.prod(self._input_shape)
        for layer in reversed(self.layers):
            if isinstance(layer, Linear):
                return layer.out_features
        raise ValueError("model has no Linear layer, so no fixed output size")

    @property
    def dtype(self) -> np.dtype:
        for layer in self.layers:
            for p in layer.params.values():
                return p.dtype
        return np.dtype(np.float32)

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layers": [layer.config() for layer in self.layers]}
        if self._input_shape is not None:
            out["input_shape"] = list(self._input_shape)
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any], *, rng: np.random.Generator | int | None = None,
                    dtype: Any = np.float32) -> Sequential:
        """Build the layers :meth:`config` lists (fresh parameters: load weights after).

        Every layer is made by ``LAYERS.create`` with ``rng`` and ``dtype`` (those that take
        them), in order, so the same config and seed give the same initial weights."""
        layers = config.get("layers") if isinstance(config, dict) else None
        if not isinstance(layers, list) or not layers:
            raise ValueError("model config needs a non-empty 'layers' list")
        input_shape = config.get("input_shape")
        if input_shape is not None and not isinstance(input_shape, list):
            raise ValueError(f"model config's 'input_shape' must be a list, got {input_shape!r}")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        return cls([LAYERS.create(c, rng=rng, dtype=np.dtype(dtype)) for c in layers],
                   input_shape=input_shape)

    def rngs(self) -> dict[str, np.random.Generator]:
        """Random generators owned by layers (dropout), by layer index, for checkpoints."""
        return {str(i): layer.rng for i, layer in enumerate(self.layers)
                if isinstance(getattr(layer, "rng", None), np.random.Generator)}

    def layer_table(self) -> list[tuple[str, str, int]]:
        """``(layer, output shape, parameters)`` for every layer, as :meth:`summary` shows
        them; the shapes come from each layer's ``output_shape`` (no forward pass), with the
        batch axis written ``n``."""
        rows = []
        try:
            shape: tuple[int, ...] | None = self.input_shape
        except ValueError:
            shape = None
        for layer in self.layers:
            try:
                shape = None if shape is None else layer.output_shape(shape)
            except ValueError:
                shape = None
            shown = "?" if shape is None else "(" + ", ".join(["n", *map(str, shape)]) + ")"
            rows.append((layer.brief(), shown, sum(p.size for p in layer.params.values())))
        return rows

    def summary(self) -> str:
        """The layers as a table (like Keras' ``summary()``): each layer, its output shape and
        its parameter count, then the total."""
        rows = self.layer_table()
        width = max([len("layer"), *(len(r[0]) for r in rows)])
        shape_width = max([len("output shape"), *(len(r[1]) for r in rows)])
        lines = [f"{'#':>3}  {'layer':<{width}}  {'output shape':<{shape_width}}  {'params':>10}"]
        for i, (brief, shape, n) in enumerate(rows):
            lines.append(f"{i:>3}  {brief:<{width}}  {shape:<{shape_width}}  {n:>10,}")
        lines.append(f"     {'total':<{width}}  {'':<{shape_width}}  {self.num_parameters:>10,}")
        size = self.num_parameters * self.dtype.itemsize / 1e6
        lines.append(f"     {self.dtype}, {size:.2f} MB of weights")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The :meth:`summary` table as HTML, for notebooks (plain strings: no imports)."""
        cells = "".join(
            f"<tr><td>{i}</td><td><code>{html.escape(brief)}</code></td><td>{html.escape(shape)}</td>"
            f"<td style='text-align:right'>{n:,}</td></tr>"
            for i, (brief, shape, n) in enumerate(self.layer_table()))
        size = self.num_parameters * self.dtype.itemsize / 1e6
        return ("<table class='digitnet-summary'><thead><tr><th>#</th><th>layer</th><th>output shape</th>"
                f"<th>params</th></tr></thead><tbody>{cells}</tbody><tfoot><tr><td></td><td>total</td>"
                f"<td>{self.dtype}, {size:.2f} MB</td><td style='text-align:right'>{self.num_parameters:,}"
                "</td></tr></tfoot></table>")

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Sequential(\n  {inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]


def mlp_layers(
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    output_activation: str | None = None,
    bias: bool = True,
    weight_init: str | dict | None = None,
    bias_init: str | dict = "zeros",
    dropout: float = 0.0,
) -> list[dict[str, Any]]:
    """The layer configs of a multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``.

    ``activation`` goes after every hidden Linear layer (then ``Dropout`` if
    ``dropout > 0``); ``output_activation`` (e.g. ``"sigmoid"``) after the last one. Leave
    it ``None`` when the loss takes logits (cross-entropy). The default initialiser is He
    for ReLU-like activations and Glorot otherwise.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"an MLP needs positive input and output sizes, got {sizes}")
    for what, name in (("activation", activation), ("output activation", output_activation)):
        if name is not None and name not in activation_names():
            raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(activation_names())}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if weight_init is None:
        weight_init = "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"
    layers: list[dict[str, Any]] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append({"type": "Linear", "in_features": n_in, "out_features": n_out, "bias": bias,
                       "weight_init": weight_init, "bias_init": bias_init})
        if i < len(sizes) - 2:
            layers.append({"type": LAYERS.canonical(activation)})
            if dropout > 0:
                layers.append({"type": "Dropout", "p": dropout})
        elif output_activation is not None:
            layers.append({"type": LAYERS.canonical(output_activation)})
    return layers


def mlp(sizes: Sequence[int], *, rng: np.random.Generator | int | None = None, dtype: Any = np.float32,
        **options: Any) -> Sequential:
    """A multilayer perceptron: :func:`mlp_layers` (same options) built with ``rng`` and ``dtype``."""
    return Sequential.from_config({"layers": mlp_layers(sizes, **options)}, rng=rng, dtype=dtype)
