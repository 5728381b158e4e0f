"""Layers: each one's forward and backward pass, written by hand, as the formula it computes.

Conventions (the whole engine follows them):

* Samples are rows: dense inputs and outputs are ``(batch, features)``.
* ``forward(x)`` keeps what ``backward`` needs; ``backward(grad_out)`` *overwrites* the
  layer's parameter gradients (they are not accumulated) and returns the gradient with
  respect to the layer's input.
* A layer owns its parameters and their gradients as name -> array pairs in
  ``self.params`` and ``self.grads``; the optimiser walks those pairs. State that is saved
  with the model but not trained (batch norm's running statistics) is in ``self.buffers``.
* Shapes are per sample (no batch axis): ``Layer.infer(config, input_shape)`` fills in the
  sizes a layer config leaves to the layer below (``in_features``, ``in_channels``, ...) and
  gives the output shape, so a stack of layer tables is sized from the input shape alone.
* In training, the outputs of matrix products are written into arrays reused from step to
  step (:class:`~digitnet.nn.workspace.Workspace`), so the array ``forward`` returns is
  valid until the next ``forward``. In evaluation mode (``layer.train(False)``) every
  ``forward`` returns fresh arrays.
* Every layer class is registered in :data:`LAYERS` under its class name (activations also
  under a lower-case alias such as ``"relu"``), so a saved model can name it.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from .init import INITIALIZERS, Initializer
from .registry import Registry
from .workspace import Workspace

#: A layer config (``{"type": "Linear", "out_features": 10, ...}``) and the shape of one sample.
Config = dict[str, Any]
Shape = tuple[int, ...]


class Layer(Workspace):
    """Base class. Subclasses implement ``forward`` and ``backward``; those with options
    also ``config``. ``activation`` marks elementwise nonlinearities (what ``mlp`` and the
    ``--activation`` option may name)."""

    name = "Layer"
    activation = False
    #: The rank of one sample the layer takes: 1 for feature vectors, 3 for (channels, height,
    #: width) images; None for any (elementwise layers).
    input_ndim: int | None = None

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        """``(config, output_shape)`` for one sample of ``input_shape``: the config with the sizes
        that follow from the input filled in, and the shape the layer gives. A ``ValueError``
        says why an input does not fit. Elementwise layers (this default) keep the shape."""
        return config, tuple(input_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one output sample for one input sample of ``input_shape``."""
        return type(self).infer(self.config(), tuple(input_shape))[1]

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-able description from which ``LAYERS.create`` rebuilds the layer."""
        return {"type": self.name}

    def train(self, mode: bool = True) -> None:
        self.training = mode

    def brief(self) -> str:
        """A short description for summaries: ``Linear(784 -> 256)``, ``Dropout(p=0.2)``
        (initialisers left out: they matter only before training)."""
        config = {k: v for k, v in self.config().items() if k not in ("type", "weight_init", "bias_init")}
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        kept = ("kernel_size",)  # always shown
        config = {k: v for k, v in config.items()
                  if k in kept or k not in defaults or _plain(v) != _plain(defaults[k])}
        if "stride" in config and _plain(config["stride"]) == _plain(config.get("kernel_size")):
            config.pop("stride")  # pooling windows that tile the image
        parts = [str(config.pop("num_features"))] if "num_features" in config else []
        for unit in ("features", "channels"):
            if f"in_{unit}" in config and f"out_{unit}" in config:
                parts.append(f"{config.pop(f'in_{unit}')} -> {config.pop(f'out_{unit}')}")
        if "kernel_size" in config:
            k = config.pop("kernel_size")
            parts.append("x".join(map(str, k)) if isinstance(k, (list, tuple)) else f"{k}x{k}")
        parts += [f"{k}={v!r}" for k, v in config.items()]
        return f"{self.name}({', '.join(parts)})" if parts else self.name

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"


LAYERS: Registry[Layer] = Registry("layer", key="type")


def size_option(config: dict[str, Any], key: str) -> int:
    """A layer config's size option (``out_features``, ``out_channels``, ...) as a positive int."""
    value = config.get(key)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a positive whole number, got {value!r}")
    return int(value)


@LAYERS.register()
class Linear(Layer):
    """Affine map ``y = x @ W + b``.

    Shapes: x ``(n, in_features)``, W ``(in_features, out_features)``,
    b ``(out_features,)``, y ``(n, out_features)``. ``bias=False`` drops ``b``
    (seed 001's network has none).

    Gradients, with ``g = dL/dy``: ``dW = x.T @ g``, ``db = sum_n g``,
    ``dx = g @ W.T``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        weight_init: str | dict | Initializer = "he_normal",
        bias_init: str | dict | Initializer = "zeros",
        rng: np.random.Generator | None = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ValueError(f"Linear needs positive sizes, got {in_features}->{out_features}")
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.use_bias = bool(bias)
        self.weight_init = INITIALIZERS.create(weight_init)
        self.bias_init = INITIALIZERS.create(bias_init)
        self.dtype = np.dtype(dtype)
        shape = (self.in_features, self.out_features)
        self.params["weight"] = self.weight_init(shape, rng, self.dtype)
        self.grads["weight"] = np.zeros(shape, dtype=self.dtype)
        if self.use_bias:
            self.params["bias"] = self.bias_init((self.out_features,), rng, self.dtype)
            self.grads["bias"] = np.zeros(self.out_features, dtype=self.dtype)

    @classmethod
    def infer(cls, config: Config, input_shape: Shape) -> tuple[Config, Shape]:
        if len(input_shape) != 1:
            raise ValueError(f"{cls.name} takes feature vectors, got inputs of shape {tuple(input_shape)}; "
                             "a Flatten layer (or GlobalAvgPool2D) turns images into vectors")
        config = {**config, "in_features": config.get("in_features", input_shape[0])}
        if config["in_features"] != input_shape[0]:
            raise ValueError(f"in_features is {config['in_features']!r}, but its input has "
                             f"{input_shape[0]} features")
        return config, (size_option(config, "out_features"),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}->{self.out_features}) expects input of shape "
                             f"(batch, {self.in_features}), got {x.shape}")
        self._x = x = x.astype(self.dtype, copy=False)
        y = np.matmul(x, self.params["weight"], out=self.reuse("y", (len(x), self.out_features), self.dtype))
        if self.use_bias:
            y += self.params["bias"]
        return y

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        x, g, w = self._x, grad_out, self.params["weight"]
        np.matmul(x.T, g, out=self.grads["weight"])  # dW = x.T @ g
        if self.use_bias:
            np.add.reduce(g, axis=0, out=self.grads["bias"])  # db = sum over the batch of g
        if not need_input_grad:
            return None
        return np.matmul(g, w.T, out=self.reuse("dx", x.shape, self.dtype))  # dx = g @ W.T

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.use_bias, "weight_init": self.weight_init.config(),
                "bias_init": self.bias_init.config()}


@LAYERS.register(aliases=("relu",))
class ReLU(Layer):
    """``y = max(x, 0)``; ``dy/dx = 1`` where ``x > 0``, else 0."""

    activation = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._positive = x > 0
        return np.maximum(x, 0)

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        return grad_out * self._positive


@LAYERS.register(aliases=("leaky_relu",))
class LeakyReLU(Layer):
    """``y = x`` where ``x > 0``, else ``alpha * x``: never a dead unit. ``dy/dx`` is the
    slope, 1 or ``alpha``."""

    activation = True

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._slope = np.where(x > 0, 1.0, self.alpha).astype(x.dtype)
        return x * self._slope

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        return grad_out * self._slope

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "alpha": self.alpha}


@LAYERS.register(aliases=("sigmoid",))
class Sigmoid(Layer):
    """``y = 1 / (1 + exp(-x))``, computed as ``0.5 * tanh(x / 2) + 0.5``, which never
    overflows; ``dy/dx = y (1 - y)``."""

    activation = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = y = 0.5 * np.tanh(0.5 * x) + 0.5
        return y

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        y = self._y
        return grad_out * y * (1 - y)


@LAYERS.register(aliases=("tanh",))
class Tanh(Layer):
    """``y = tanh(x)``; ``dy/dx = 1 - y^2``."""

    activation = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = y = np.tanh(x)
        return y

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        y = self._y
        return grad_out * (1 - y * y)


@LAYERS.register(aliases=("scaled_tanh",))
class ScaledTanh(Layer):
    """LeCun's squashing function, ``y = A tanh(S x)`` with ``A = 1.7159``, ``S = 2/3`` (LeNet-5,
    1998: unit inputs give outputs of about unit variance, and ``y(1) = 1``);
    ``dy/dx = A S (1 - tanh^2(S x))``."""

    activation = True

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude, self.slope = float(amplitude), float(slope)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._t = t = np.tanh(self.slope * x)
        return self.amplitude * t

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        t = self._t
        return grad_out * (self.amplitude * self.slope) * (1 - t * t)

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "amplitude": self.amplitude, "slope": self.slope}


@LAYERS.register(aliases=("softmax",))
class Softmax(Layer):
    """Row-wise ``y = exp(x - max x) / sum(exp(x - max x))`` (the shift changes nothing but
    keeps ``exp`` finite).

    Backward: ``dx = y * (g - sum(g * y, axis=1))``. For training a classifier, prefer the
    fused :class:`~digitnet.nn.losses.SoftmaxCrossEntropy` on logits; this layer exists for
    networks that need probabilities mid-graph.
    """

    activation = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self._y = y = e / e.sum(axis=1, keepdims=True)
        return y

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        y, g = self._y, grad_out
        return y * (g - (g * y).sum(axis=1, keepdims=True))


@LAYERS.register()
class Dropout(Layer):
    """Inverted dropout: in training, ``y = x * keep / (1 - p)`` where ``keep`` is 0 with
    probability ``p`` and 1 otherwise, so the expected output equals the input; in
    evaluation, ``y = x``. ``dx = g * keep / (1 - p)``.

    Owns its random generator (``self.rng``, seeded from ``rng``) so a checkpoint can save
    and restore its state.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = np.random.default_rng(None if rng is None else rng.integers(2**63))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
        self._scale = keep.astype(x.dtype) * (1.0 / (1.0 - self.p))
        return x * self._scale

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray:
        return grad_out if self._scale is None else grad_out * self._scale

    def config(self) -> dict[str, Any]:
        return {"type": self.name, "p": self.p}


def activation_names() -> list[str]:
    """The lower-case names of the activation layers (``"relu"``, ``"sigmoid"``, ...)."""
    return [n for n in LAYERS.names(aliases=True, where=lambda cls: cls.activation) if n.islower()]


def _plain(value: Any) -> Any:
    """A config value compared across spellings: ``[2, 2]``, ``(2, 2)`` and ``2`` alike."""
    if isinstance(value, (list, tuple)):
        value = tuple(value)
        return value[0] if len(value) == 2 and value[0] == value[1] else value
    return value
