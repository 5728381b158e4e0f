"""Trained digit classifiers and the one way a spec becomes one.

:class:`Classifier` is what a training run produces and a model file holds: the network,
the loss that defines how outputs become probabilities, the input normalisation, the class
labels, and the run spec that made it. Inputs are raw pixels (``uint8`` 0-255 or floats on
that scale): rows of 784, or 28x28 (or 1x28x28) images, for a multilayer perceptron and a
convolutional network alike (a convolutional network's first layer turns rows into images).

:func:`train_classifier` trains the network a :class:`~digitnet.spec.RunSpec` describes on
prepared data; ``digitnet train``, ``digitnet reproduce`` and the scikit-learn estimator
(:class:`digitnet.estimator.MLPClassifier`, whose parameters are the spec's own names) all go
through it. This module never imports scikit-learn.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import __version__, io, model_schema, notebook
from .data.augment import Augmenter
from .data.scaling import Normalizer
from .errors import SpecError
from .nn import LAYERS, LOSSES, Conv2D
from .nn import losses as nn_losses
from .nn.model import Sequential
from .nn.optim import Optimizer
from .prepare import PreparedData
from .spec import RunSpec, build
from .train import History, fit

MODEL_DTYPES = model_schema.MODEL_DTYPES


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


#: The feature maps one convolution computes: its layer index (``conv``), the index of the
#: layer whose output they are (``layer``), a ``title``, and the ``maps`` ``(n, channels,
#: height, width)``. (The functional form keeps the field types real classes rather than
#: strings, so documentation tools can resolve them.)
FeatureMaps = NamedTuple("FeatureMaps", [("conv", int), ("layer", int), ("title", str),  # noqa: UP014
                                         ("maps", np.ndarray)])
FeatureMaps.__doc__ = "The feature maps one convolution computes (:meth:`Classifier.feature_maps`)."

#: What a network makes of a batch (:meth:`Classifier.read`): ``labels`` ``(n,)``,
#: ``probabilities`` ``(n, k)``, the ``hidden`` activations on feature vectors and the
#: ``feature_maps`` of each convolution.
Reading = NamedTuple("Reading", [("labels", np.ndarray), ("probabilities", np.ndarray),  # noqa: UP014
                                 ("hidden", list[np.ndarray]), ("feature_maps", list[FeatureMaps])])
Reading.__doc__ = "What a network makes of a batch (:meth:`Classifier.read`)."


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
    def class_names(self) -> list[str]:
        """A name for each of ``classes`` ("Trouser" for Fashion-MNIST's 1): the model file's
        ``class_names``, else the labels as text."""
        names = self.metadata.get("class_names")
        if isinstance(names, list) and len(names) == len(self.classes) \
                and all(isinstance(n, str) for n in names):
            return list(names)
        return [str(c) for c in self.classes]

    @property
    def dataset(self) -> str:
        """The catalogue name of the dataset the model was trained on (``"mnist"`` if the file
        does not say)."""
        spec = self.metadata.get("spec")
        data = spec.get("data") if isinstance(spec, dict) else None
        name = data.get("dataset") if isinstance(data, dict) else None
        return name if isinstance(name, str) else "mnist"

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

    # -- description ----------------------------------------------------------------------
    def facts(self) -> list[tuple[str, str]]:
        """``(what, value)`` pairs that describe the classifier beyond its layers."""
        norm = self.normalizer
        scaling = norm.method + (" per pixel" if norm.per_pixel and norm.method == "zscore" else "")
        out = [("classes", _classes_text(self.classes)),
               ("inputs", f"{self.n_features} raw pixels (0-255), scaled by {scaling!r}"),
               ("loss", repr(self.loss))]
        spec = self.metadata.get("spec")
        if isinstance(spec, dict) and isinstance(spec.get("training"), dict):
            t = spec["training"]
            keys = ("optimizer", "lr", "schedule", "batch_size", "epochs", "seed")
            out.append(("trained with", ", ".join(f"{k} {t[k]}" for k in keys if k in t)))
        metrics = self.metadata.get("metrics")
        if isinstance(metrics, dict) and isinstance(metrics.get("test_accuracy"), (int, float)):
            out.append(("test accuracy", f"{metrics['test_accuracy']:.4f}"))
        return out

    def summary(self) -> str:
        """What ``digitnet summary`` prints: the facts, then the layer table."""
        width = max(len(k) for k, _ in self.facts())
        return "\n".join([*(f"{k:<{width}}  {v}" for k, v in self.facts()), "", self.model.summary()])

    def __repr__(self) -> str:
        return (f"Classifier({_describe(self.model)}; {self.model.num_parameters:,} parameters, "
                f"{self.model.dtype}; {self.loss.name}; normalization {self.normalizer.method!r}; "
                f"classes {_classes_text(self.classes)})")

    def _repr_html_(self) -> str:
        return notebook.section("digitnet Classifier", notebook.table(self.facts()), self.model._repr_html_())

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
        """Read a model file; any missing, corrupt, hostile or mismatched part is a one-line
        ``ModelFileError`` naming the file (and the field, for metadata).

        The metadata is validated against :mod:`digitnet.model_schema` before anything is
        built; then the layers are built (their size is now bounded) and only the arrays they
        need are read, each checked against its parameter's shape and dtype first."""
        with io.open_bundle(path, kind="model") as bundle:
            try:
                meta = model_schema.check_model_meta(bundle.meta)
                _import_components(meta.get("components", {}))
                for i, layer in enumerate(meta["architecture"]["layers"]):
                    _check_options(LAYERS, layer, "type", f"architecture.layers[{i}]")
                _check_options(LOSSES, meta["loss"], "name", "loss")
                model = Sequential.from_config(meta["architecture"], dtype=np.dtype(meta["dtype"]))
                _check_working_size(model)
                loss = LOSSES.create(meta["loss"])
                normalizer = Normalizer.from_dict(meta["normalization"])
            except (KeyError, TypeError, ValueError) as exc:  # SchemaError is a ValueError
                raise io.ModelFileError(f"{path}: invalid model file: {exc}") from None
            classes = list(meta["classes"])
            try:
                fits = model.output_size == loss.outputs_for(len(classes))
            except ValueError:
                fits = False
            if not fits:
                raise io.ModelFileError(f"{path}: {model.output_size} outputs do not fit {len(classes)} "
                                        "classes")
            wanted = {f"param/{name}": p for name, p, _ in model.parameters()}
            wanted.update((f"param/{name}", b) for name, b in model.buffers())  # batch norm's statistics
            missing = sorted(set(wanted) - set(bundle.names))
            if missing:
                raise io.ModelFileError(f"{path}: the file has no array {missing[0]!r} for its layers")
            state = {name[len("param/"):]: bundle.read(name, shape=p.shape, dtypes=(meta["dtype"],))
                     for name, p in wanted.items()}
        try:
            model.load_state_dict(state)
        except ValueError as exc:
            raise io.ModelFileError(f"{path}: invalid model file ({exc})") from None
        model.eval()
        extra = {k: v for k, v in meta.items()
                 if k not in ("architecture", "dtype", "loss", "normalization", "classes", "components")}
        return cls(model, loss, normalizer, classes, extra)


def _check_working_size(model: Sequential) -> None:
    """No layer may need more than ``model_schema.MAX_SAMPLE_VALUES`` values for one sample:
    its output, or a convolution's unfolded patches (``C*kh*kw`` values per output pixel)."""
    try:
        shapes = model.shapes()
    except ValueError:  # no fixed input shape (an old MLP file): its Linear sizes are bounded
        return
    for i, (layer, shape) in enumerate(zip(model.layers, shapes, strict=True)):
        need = math.prod(shape)
        if isinstance(layer, Conv2D):
            need = max(need, layer.in_channels * math.prod(layer.kernel_size) * math.prod(shape[1:]))
        if need > model_schema.MAX_SAMPLE_VALUES:
            raise model_schema.SchemaError(
                f"architecture.layers[{i}]: needs {need:,} values per sample, over the limit of "
                f"{model_schema.MAX_SAMPLE_VALUES:,}")


def _classes_text(classes: list[int]) -> str:
    if len(classes) > 2 and list(classes) == list(range(classes[0], classes[0] + len(classes))):
        return f"{classes[0]}-{classes[-1]}"
    return ", ".join(map(str, classes))


def _check_options(registry: Any, config: dict[str, Any], key: str, where: str) -> None:
    """The component ``config[key]`` is registered and takes every other key of ``config``."""
    name = config[key]
    if name not in registry:
        raise model_schema.SchemaError(f"{where}.{key}: unknown {registry.kind} {name!r}")
    unknown = sorted(set(config) - {key} - set(registry.options(name)))
    if unknown:
        raise model_schema.SchemaError(f"{where}.{unknown[0]}: not an option of {registry.kind} {name!r}")


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
def train_classifier(spec: RunSpec, data: PreparedData, *, start: Classifier | None = None,
                     optimizer: Optimizer | None = None, checkpoint: str | Path | None = None,
                     resume: bool = False, progress: bool | None = None,
                     log: Callable[[str], None] | None = None,
                     on_epoch_end: Callable[[int, History, Classifier], None] | None = None
                     ) -> tuple[Classifier, History]:
    """Build what ``spec`` describes for ``data`` and train it; the one training path of
    ``digitnet train``, ``digitnet reproduce`` and the scikit-learn estimator.

    ``start`` continues training that classifier's network (and keeps its normaliser and
    classes) instead of a new one: the estimator's ``warm_start`` and ``partial_fit``. The
    spec must describe the same network. ``optimizer`` continues with that optimiser and its
    state (default: a new one, as the spec says)."""
    t = spec.training
    built = build(spec, data.n_features, len(data.classes), len(data.x_train))
    batch = t.batch_size or None
    opt = built.optimizer if optimizer is None else optimizer
    if getattr(opt, "equal_batches", False) and batch and len(data.x_train) % batch:
        raise SpecError(f"training.batch_size: the {t.optimizer} optimizer needs batches of equal size; "
                        f"{batch} does not divide {len(data.x_train)} training images")
    augment = Augmenter.from_config(spec.data.augment) if spec.data.augment else None
    if start is None:
        clf = Classifier(built.model, built.loss, data.normalizer, list(data.classes),
                         {"spec": spec.to_dict(), "class_names": list(data.class_names)})
    else:
        if _shape_of(start.model) != _shape_of(built.model):
            raise SpecError("model: the settings describe another network than the one being continued "
                            f"({_describe(built.model)} instead of {_describe(start.model)})")
        if list(start.classes) != list(data.classes):
            raise ValueError(f"the network being continued knows the classes {list(start.classes)}, "
                             f"not {list(data.classes)}")
        clf = Classifier(start.model, built.loss, start.normalizer, list(start.classes),
                         {**start.metadata, "spec": spec.to_dict()})
    model = clf.model
    callback = None if on_epoch_end is None else (lambda epoch, h: on_epoch_end(epoch, h, clf))
    valid = (data.x_valid, data.y_valid) if len(data.x_valid) else None
    history = fit(model, clf.loss, opt, data.x_train, data.y_train, epochs=t.epochs,
                  batch_size=batch, preprocess=data.train_scale, validation_data=valid,
                  validation_preprocess=data.eval_scale, shuffle=t.shuffle, seed=t.seed, augment=augment,
                  early_stopping=t.early_stopping, monitor=t.monitor, checkpoint=checkpoint,
                  resume=resume, progress=progress, diagnostics=t.diagnostics, log=log,
                  on_epoch_end=callback)
    model.eval()
    return clf, history


def _shape_of(model: Sequential) -> list[dict[str, Any]]:
    """A network's layers without their initialisers (which a continued network no longer uses)."""
    return [{k: v for k, v in c.items() if k not in ("weight_init", "bias_init")}
            for c in model.config()["layers"]]


def _describe(model: Sequential) -> str:
    return ", ".join(layer.brief() for layer in model.layers)


def evaluate_split(clf: Classifier, x: np.ndarray, y: np.ndarray, scale: Normalizer | None) -> np.ndarray:
    """Predicted class indices for a prepared split (``scale`` None: already scaled)."""
    outputs = clf.model.predict(x if scale is None else scale.transform(x))
    return clf.loss.predict_labels(outputs)
