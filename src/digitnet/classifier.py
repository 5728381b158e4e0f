"""Trained digit classifiers, the one way a spec becomes one, and a scikit-learn style
estimator.

:class:`Classifier` is what a training run produces and a model file holds: the network,
the loss that defines how outputs become probabilities, the input normalisation, the class
labels, and the run spec that made it. Inputs are raw pixels (``uint8`` 0-255 or floats on
that scale): rows of 784, or 28x28 (or 1x28x28) images, for a multilayer perceptron and a
convolutional network alike (a convolutional network's first layer turns rows into images).

:func:`train_classifier` trains the network a :class:`~digitnet.spec.RunSpec` describes on
prepared data; ``digitnet train``, ``digitnet reproduce`` and :class:`MLPClassifier` all
go through it. :class:`MLPClassifier`'s parameters are the spec's own names.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import __version__, io
from .data.datasets import train_valid_split
from .data.scaling import Normalizer
from .errors import SpecError
from .nn import LAYERS, LOSSES, Conv2D, UnknownComponentError
from .nn import losses as nn_losses
from .nn.model import Sequential
from .prepare import PreparedData
from .spec import DataSpec, ModelSpec, RunSpec, TrainingSpec, build
from .train import History, fit

MODEL_DTYPES = ("float32", "float64")


def check_inputs(x: Any, n_features: int | None = None) -> np.ndarray:
    """Validate images as ``(n, d)`` numbers; images ``(n, 28, 28)`` or ``(n, 1, 28, 28)`` become rows."""
    x = np.asarray(x)
    if x.ndim in (3, 4):
        x = x.reshape(len(x), -1)
    if x.ndim == 1 and n_features is not None and x.size == n_features:
        x = x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"expected images as an (n, {n_features or 'd'}) array, got shape {x.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features per image, got {x.shape[1]}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"images must be real numbers, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or inf")
    return x


class FeatureMaps(NamedTuple):
    """The feature maps one convolution computes: its layer index, the index of the layer
    whose output they are, a title, and the maps ``(n, channels, height, width)``."""

    conv: int
    layer: int
    title: str
    maps: np.ndarray


class Reading(NamedTuple):
    """What a network makes of a batch (:meth:`Classifier.read`)."""

    labels: np.ndarray
    probabilities: np.ndarray
    hidden: list[np.ndarray]
    feature_maps: list[FeatureMaps]


@dataclass
class Classifier:
    """A trained network with everything needed to use it on raw images."""

    model: Sequential
    loss: nn_losses.Loss
    normalizer: Normalizer
    classes: list[int]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.model.input_size

    @property
    def spec(self) -> RunSpec | None:
        """The run spec that trained this model, when the file records one."""
        d = self.metadata.get("spec")
        return RunSpec.from_dict(d, "model file spec") if isinstance(d, dict) else None

    def _inputs(self, x: Any) -> np.ndarray:
        x = check_inputs(x, self.n_features)
        return self.normalizer.transform(x)

    def decision_function(self, x: Any, *, batch_size: int = 4096) -> np.ndarray:
        """Raw network outputs ``(n, k)`` (logits for cross-entropy models).

        Inputs are scaled ``batch_size`` rows at a time, so a large uint8 set (the 10,000
        test images) never exists as one float copy. Safe to call from several threads."""
        x = check_inputs(x, self.n_features)
        chunks = [self.model.predict(self.normalizer.transform(x[i : i + batch_size]))
                  for i in range(0, max(len(x), 1), batch_size)]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities ``(n, len(classes))``; rows sum to 1."""
        return self._probabilities(self.decision_function(x))

    def predict_with_proba(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(predict(x), predict_proba(x))`` from one forward pass."""
        outputs = self.decision_function(x)
        return self._labels(outputs), self._probabilities(outputs)

    def _labels(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes)[self.loss.predict_labels(outputs)]

    def _probabilities(self, outputs: np.ndarray) -> np.ndarray:
        p = self.loss.link(outputs)
        if p.shape[1] != len(self.classes):
            raise ValueError(f"model gives {p.shape[1]} outputs for {len(self.classes)} classes")
        if not isinstance(self.loss, (nn_losses.SoftmaxCrossEntropy, nn_losses.BinaryCrossEntropy)):
            # outputs trained by MSE (or a seed's own loss) are scores, not probabilities
            p = np.clip(np.nan_to_num(p, nan=0.0), 1e-12, None)
            p = p / p.sum(axis=1, keepdims=True)
        return p

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class labels ``(n,)``."""
        return self._labels(self.decision_function(x))

    def score(self, x: Any, y: Any) -> float:
        """Accuracy on ``(x, y)``."""
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def hidden_activations(self, x: Any) -> list[np.ndarray]:
        """Output ``(n, units)`` of every hidden activation layer on feature vectors (not the
        final layer), for a small batch. A convolutional network's activations on images are
        its :meth:`feature_maps`."""
        return self.read(x).hidden

    def feature_maps(self, x: Any) -> list[FeatureMaps]:
        """What each convolution computes for a small batch: for every ``Conv2D``, the output
        ``(n, channels, height, width)`` of the last layer after it that keeps its shape (its
        batch norm and activation), before any pooling. Empty for a network without one."""
        return self.read(x).feature_maps

    def read(self, x: Any) -> Reading:
        """Labels, probabilities, hidden activations and feature maps of a small batch, from
        one forward pass (what ``digitnet serve`` shows for a drawn digit)."""
        layers = self.model.layers
        outs = self.model.activations(self._inputs(x))
        hidden = [outs[i] for i, layer in enumerate(layers[:-1]) if layer.activation and outs[i].ndim == 2]
        maps = []
        shapes = self.model.shapes() if any(isinstance(layer, Conv2D) for layer in layers) else []
        for i, layer in enumerate(layers):
            if not isinstance(layer, Conv2D):
                continue
            j = i  # through the layers that keep the maps' shape: batch norm, activation, dropout
            while (j + 1 < len(layers) and shapes[j + 1] == shapes[i]
                   and not isinstance(layers[j + 1], Conv2D)):
                j += 1
            after = ", ".join(type(layers[k]).__name__ for k in range(i + 1, j + 1))
            c, h, w = shapes[i]
            kh, kw = layer.kernel_size
            title = (f"convolution {len(maps) + 1}: {c} maps of {h}x{w} ({kh}x{kw} kernels"
                     + (f", then {after})" if after else ")"))
            maps.append(FeatureMaps(i, j, title, outs[j]))
        return Reading(self._labels(outs[-1]), self._probabilities(outs[-1]), hidden, maps)

    # -- files --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model file (atomically): weights in .npz, everything else as JSON,
        including the module that defines each component, so loading never depends on what
        happens to be imported."""
        meta = {
            "kind": "model",
            "digitnet_version": __version__,
            "architecture": self.model.config(),
            "dtype": str(self.model.dtype),
            "loss": self.loss.config(),
            "normalization": self.normalizer.to_dict(),
            "classes": [int(c) for c in self.classes],
            "components": _components(self.model, self.loss),
            **{k: v for k, v in self.metadata.items() if k not in ("kind", "format", "components")},
        }
        return io.save_bundle(path, meta, io.with_prefix(self.model.state_dict(), "param"))

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Read a model file; any missing, corrupt or mismatched part is a ``ModelFileError``."""
        meta, arrays = io.load_bundle(path, kind="model")
        try:
            _import_components(meta.get("components", {}))
            dtype = meta["dtype"]
            if dtype not in MODEL_DTYPES:
                raise ValueError(f"dtype must be one of {', '.join(MODEL_DTYPES)}, got {dtype!r}")
            model = Sequential.from_config(meta["architecture"], dtype=np.dtype(dtype))
            model.load_state_dict(io.split_prefix(arrays, "param"))
            model.eval()
            loss = LOSSES.create(meta["loss"])
            normalizer = Normalizer.from_dict(meta["normalization"])
            classes = _classes(meta["classes"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise io.ModelFileError(f"{path}: invalid model file ({exc})") from None
        try:
            fits = len(classes) >= 2 and model.output_size == loss.outputs_for(len(classes))
        except ValueError:
            fits = False
        if not fits:
            raise io.ModelFileError(f"{path}: {model.output_size} outputs do not fit {len(classes)} classes")
        extra = {k: v for k, v in meta.items()
                 if k not in ("architecture", "dtype", "loss", "normalization", "classes", "components")}
        return cls(model, loss, normalizer, classes, extra)


def _classes(values: Any) -> list[int]:
    if not isinstance(values, list) or not all(type(c) is int for c in values):
        raise ValueError(f"classes must be a list of integers, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"classes must be distinct, got {values}")
    if any(abs(c) >= 2**62 for c in values):
        raise ValueError("class labels out of range")
    return list(values)


def _components(model: Sequential, loss: nn_losses.Loss) -> dict[str, str]:
    """``{"layer:ScalarBiasLinear": "digitnet.quirks", ...}`` for every component the file names."""
    out = {f"layer:{layer.name}": LAYERS.module_of(layer.name) for layer in model.layers}
    out[f"loss:{loss.name}"] = LOSSES.module_of(loss.name)
    return out


def _import_components(components: Any) -> None:
    """Import the modules that define a file's components. Only digitnet's own modules are
    imported on a file's say-so (importing runs code); a component from anywhere else must
    be imported by the caller before loading."""
    if not isinstance(components, dict):
        raise ValueError("'components' must map component names to modules")
    for what, module in components.items():
        kind, _, name = str(what).partition(":")
        registry = {"layer": LAYERS, "loss": LOSSES}.get(kind)
        if registry is None or name in registry:
            continue
        if not (isinstance(module, str) and (module == "digitnet" or module.startswith("digitnet."))):
            raise ValueError(f"{kind} {name!r} comes from module {module!r}: import it before loading "
                             "(digitnet imports only its own modules when a file asks)")
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(f"{kind} {name!r}: its module {module!r} is not part of this digitnet") from None


# --------------------------------------------------------------------------- training
def train_classifier(spec: RunSpec, data: PreparedData, *, checkpoint: str | Path | None = None,
                     resume: bool = False, progress: bool | None = None,
                     log: Callable[[str], None] | None = None,
                     on_epoch_end: Callable[[int, History, Classifier], None] | None = None
                     ) -> tuple[Classifier, History]:
    """Build what ``spec`` describes for ``data`` and train it; the one training path of
    ``digitnet train``, ``digitnet reproduce`` and :class:`MLPClassifier`."""
    t = spec.training
    built = build(spec, data.n_features, len(data.classes), len(data.x_train))
    batch = t.batch_size or None
    if getattr(built.optimizer, "equal_batches", False) and batch and len(data.x_train) % batch:
        raise SpecError(f"training.batch_size: the {t.optimizer} optimizer needs batches of equal size; "
                        f"{batch} does not divide {len(data.x_train)} training images")
    clf = Classifier(built.model, built.loss, data.normalizer, list(data.classes),
                     {"spec": spec.to_dict()})
    callback = None if on_epoch_end is None else (lambda epoch, h: on_epoch_end(epoch, h, clf))
    valid = (data.x_valid, data.y_valid) if len(data.x_valid) else None
    history = fit(built.model, built.loss, built.optimizer, data.x_train, data.y_train, epochs=t.epochs,
                  batch_size=batch, preprocess=data.train_scale, validation_data=valid,
                  validation_preprocess=data.eval_scale, shuffle=t.shuffle, seed=t.seed,
                  early_stopping=t.early_stopping, monitor=t.monitor, checkpoint=checkpoint,
                  resume=resume, progress=progress, log=log, on_epoch_end=callback)
    built.model.eval()
    return clf, history


def evaluate_split(clf: Classifier, x: np.ndarray, y: np.ndarray, scale: Normalizer | None) -> np.ndarray:
    """Predicted class indices for a prepared split (``scale`` None: already scaled)."""
    outputs = clf.model.predict(x if scale is None else scale.transform(x))
    return clf.loss.predict_labels(outputs)


# --------------------------------------------------------------------------- the estimator
class MLPClassifier:
    """A multilayer perceptron classifier with a scikit-learn interface.

    >>> clf = MLPClassifier(hidden=(256,), epochs=10, seed=0)
    >>> clf.fit(x_train, y_train).score(x_test, y_test)

    Parameters are the run spec's settings, by the same names as ``digitnet train``'s
    options and ``config.json`` (see :mod:`digitnet.spec`); ``valid_size`` (default none)
    holds out that many training samples (or that fraction) to validate on each epoch, and
    ``verbose`` shows a progress bar. After ``fit``: ``classifier_`` (the
    :class:`Classifier`), ``history_``, ``classes_``.
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (256,),
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        bias: bool = True,
        weight_init: str | dict | None = None,
        bias_init: str | dict = "zeros",
        output_activation: str | None = None,
        layers: tuple[dict[str, Any], ...] | None = None,
        dtype: str = "float32",
        loss: str = "cross_entropy",
        reduction: str | None = None,
        optimizer: str = "adam",
        lr: float = 0.002,
        momentum: float | None = None,
        nesterov: bool | None = None,
        weight_decay: float | None = None,
        betas: tuple[float, float] | None = None,
        eps: float | None = None,
        schedule: str = "cosine",
        warmup: int | None = None,
        gamma: float | None = None,
        step_size: int | None = None,
        min_factor: float | None = None,
        batch_size: int = 128,
        epochs: int = 10,
        shuffle: bool = True,
        seed: int = 0,
        early_stopping: int | None = None,
        monitor: str = "val_loss",
        normalization: str = "unit",
        valid_size: int | float | None = None,
        verbose: bool = False,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.dropout = dropout
        self.bias = bias
        self.weight_init = weight_init
        self.bias_init = bias_init
        self.output_activation = output_activation
        self.layers = layers
        self.dtype = dtype
        self.loss = loss
        self.reduction = reduction
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.betas = betas
        self.eps = eps
        self.schedule = schedule
        self.warmup = warmup
        self.gamma = gamma
        self.step_size = step_size
        self.min_factor = min_factor
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.seed = seed
        self.early_stopping = early_stopping
        self.monitor = monitor
        self.normalization = normalization
        self.valid_size = valid_size
        self.verbose = verbose

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters, by name."""
        return {name: getattr(self, name) for name in _estimator_params()}

    def set_params(self, **params: Any) -> MLPClassifier:
        for name, value in params.items():
            if name not in _estimator_params():
                raise ValueError(f"MLPClassifier has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def to_spec(self) -> RunSpec:
        """The run spec these parameters describe (validated: a bad value is a SpecError)."""
        params = self.get_params()
        tables = {}
        for name, cls in (("data", DataSpec), ("model", ModelSpec), ("training", TrainingSpec)):
            own = {f.name for f in dataclasses.fields(cls)}
            tables[name] = {k: v for k, v in params.items() if k in own and v is not None}
        tables["data"]["split"] = "file"  # the estimator splits for itself (valid_size below)
        tables["data"].pop("valid_size", None)
        return RunSpec.from_dict(tables, "MLPClassifier")

    def fit(self, x: Any, y: Any, *, validation_data: tuple[Any, Any] | None = None,
            checkpoint: str | Path | None = None, resume: bool = False) -> MLPClassifier:
        spec = self.to_spec()
        if spec.data.normalization not in Normalizer.METHODS:
            raise SpecError(f"normalization {spec.data.normalization!r} scales a whole set at once; "
                            f"the estimator takes {', '.join(Normalizer.METHODS)}")
        x = check_inputs(x)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"y must be ({len(x)},) labels, got shape {y.shape}")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"need at least 2 classes to train a classifier, got {classes.tolist()}")
        y_idx = np.searchsorted(classes, y)
        x_valid, y_valid = x[:0], y_idx[:0]
        if validation_data is not None:
            x_valid = check_inputs(validation_data[0], x.shape[1])
            y_valid = np.searchsorted(classes, np.asarray(validation_data[1]))
        elif self.valid_size:
            x, y_idx, x_valid, y_valid = train_valid_split(x, y_idx, self.valid_size, stratify=True,
                                                           seed=self.seed)
        normalizer = Normalizer(spec.data.normalization).fit(x)
        data = PreparedData(x, y_idx, x_valid, y_valid, x[:0], y_idx[:0], classes.tolist(),
                            normalizer, normalizer, normalizer)
        try:
            self.classifier_, self.history_ = train_classifier(spec, data, checkpoint=checkpoint,
                                                               resume=resume, progress=self.verbose)
        except UnknownComponentError as exc:
            raise SpecError(str(exc)) from None
        self.classes_ = classes
        return self

    def _fitted(self) -> Classifier:
        if not hasattr(self, "classifier_"):
            raise RuntimeError("this MLPClassifier is not fitted yet: call fit(x, y) first")
        return self.classifier_

    def predict(self, x: Any) -> np.ndarray:
        return self._fitted().predict(x)

    def predict_proba(self, x: Any) -> np.ndarray:
        return self._fitted().predict_proba(x)

    def score(self, x: Any, y: Any) -> float:
        return self._fitted().score(x, y)

    def save(self, path: str | Path) -> Path:
        return self._fitted().save(path)


def _estimator_params() -> list[str]:
    return [p for p in inspect.signature(MLPClassifier.__init__).parameters if p != "self"]
