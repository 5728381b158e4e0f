"""Trained digit classifiers, and a scikit-learn style estimator that makes them.

:class:`Classifier` is what a training run produces and a model file holds: the
network, the loss that defines how outputs become probabilities, the input
normalisation, and the class labels. Inputs are raw pixels (``uint8`` 0-255 or
floats on that scale), rows of 784.

:class:`MLPClassifier` is the estimator: ``fit`` / ``predict`` /
``predict_proba`` / ``score`` with validated inputs and a ``random_state``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, io
from .data.scaling import Normalizer
from .nn import losses
from .nn import optim as optimizers
from .nn.model import Sequential, mlp
from .train import History, fit


def check_inputs(x: Any, n_features: int | None = None) -> np.ndarray:
    """Validate images as ``(n, d)`` numbers; ``(n, 28, 28)`` is flattened."""
    x = np.asarray(x)
    if x.ndim == 3:
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


@dataclass
class Classifier:
    """A trained network with everything needed to use it on raw images."""

    model: Sequential
    loss: losses.Loss
    normalizer: Normalizer
    classes: list[int]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.model.input_size

    def _inputs(self, x: Any) -> np.ndarray:
        x = check_inputs(x, self.n_features)
        return self.normalizer.transform(x)

    def decision_function(self, x: Any, *, batch_size: int = 4096) -> np.ndarray:
        """Raw network outputs ``(n, k)`` (logits for cross-entropy models).

        Inputs are scaled ``batch_size`` rows at a time, so a large uint8 set (the 10,000
        test images) never exists as one float copy."""
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
        if not isinstance(self.loss, (losses.SoftmaxCrossEntropy, losses.BinaryCrossEntropy)):
            # outputs trained by MSE are scores, not probabilities: normalise them
            p = np.clip(p, 1e-12, None)
            p = p / p.sum(axis=1, keepdims=True)
        return p

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class labels ``(n,)``."""
        return self._labels(self.decision_function(x))

    def score(self, x: Any, y: Any) -> float:
        """Accuracy on ``(x, y)``."""
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def hidden_activations(self, x: Any) -> list[np.ndarray]:
        """Output of every hidden activation layer (not the final layer), for a small batch."""
        outs = self.model.activations(self._inputs(x))
        keep = [i for i, layer in enumerate(self.model.layers[:-1])
                if type(layer).__name__ in ("ReLU", "LeakyReLU", "Sigmoid", "Tanh")]
        return [outs[i] for i in keep]

    # -- files --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model file (atomically): weights in .npz, everything else as JSON."""
        meta = {
            "kind": "model",
            "digitnet_version": __version__,
            "architecture": self.model.config(),
            "dtype": str(self.model.dtype),
            "loss": self.loss.config(),
            "normalization": self.normalizer.to_dict(),
            "classes": [int(c) for c in self.classes],
            **{k: v for k, v in self.metadata.items() if k not in ("kind", "format")},
        }
        return io.save_bundle(path, meta, io.with_prefix(self.model.state_dict(), "param"))

    @classmethod
    def load(cls, path: str | Path) -> Classifier:
        """Read a model file; any missing, corrupt or mismatched part is a ``ModelFileError``."""
        meta, arrays = io.load_bundle(path, kind="model")
        try:
            model = Sequential.from_config(meta["architecture"], dtype=np.dtype(meta["dtype"]))
            model.load_state_dict(io.split_prefix(arrays, "param"))
            model.eval()
            loss = losses.get(meta["loss"])
            normalizer = Normalizer.from_dict(meta["normalization"])
            classes = [int(c) for c in meta["classes"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise io.ModelFileError(f"{path}: invalid model file ({exc})") from None
        if model.output_size not in (len(classes), 1):
            raise io.ModelFileError(
                f"{path}: {model.output_size} outputs do not fit {len(classes)} classes"
            )
        extra = {k: v for k, v in meta.items()
                 if k not in ("architecture", "dtype", "loss", "normalization", "classes")}
        return cls(model, loss, normalizer, classes, extra)


class MLPClassifier:
    """A multilayer perceptron classifier with a scikit-learn interface.

    >>> clf = MLPClassifier(hidden_sizes=(256,), epochs=10, random_state=0)
    >>> clf.fit(x_train, y_train).score(x_test, y_test)

    Parameters mirror the ``digitnet train`` options. After ``fit``:
    ``classifier_`` (the :class:`Classifier`), ``history_``, ``classes_``.
    """

    def __init__(
        self,
        hidden_sizes: tuple[int, ...] = (256,),
        *,
        activation: str = "relu",
        loss: str = "cross_entropy",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        momentum: float | None = None,
        weight_decay: float = 0.0,
        schedule: str | dict | None = None,
        batch_size: int | None = 128,
        epochs: int = 10,
        dropout: float = 0.0,
        weight_init: str | dict | None = None,
        normalization: str = "unit",
        validation_fraction: float = 0.0,
        early_stopping: int | None = None,
        random_state: int | None = 0,
        verbose: bool = False,
    ) -> None:
        self.hidden_sizes = tuple(hidden_sizes)
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.dropout = dropout
        self.weight_init = weight_init
        self.normalization = normalization
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.verbose = verbose

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def build(self, n_features: int, n_classes: int) -> tuple[Sequential, losses.Loss,
                                                               optimizers.Optimizer]:
        """The untrained network, loss and optimiser this estimator's settings describe."""
        loss = losses.get(self.loss)
        binary = isinstance(loss, losses.BinaryCrossEntropy)
        if binary and n_classes != 2:
            raise ValueError(f"binary cross-entropy needs exactly 2 classes, got {n_classes}")
        n_out = 1 if binary else n_classes
        output_activation = "sigmoid" if isinstance(loss, losses.MeanSquaredError) else None
        rng = np.random.default_rng(self.random_state)
        model = mlp([n_features, *self.hidden_sizes, n_out], activation=self.activation,
                    output_activation=output_activation, weight_init=self.weight_init,
                    dropout=self.dropout, rng=rng)
        schedule = self.schedule
        if schedule == "cosine":
            schedule = {"name": "cosine", "epochs": self.epochs}
        opt = optimizers.get(self.optimizer, lr=self.learning_rate, momentum=self.momentum,
                             weight_decay=self.weight_decay or None, schedule=schedule)
        return model, loss, opt

    def fit(self, x: Any, y: Any, *, validation_data: tuple[Any, Any] | None = None,
            checkpoint: str | Path | None = None, resume: bool = False) -> MLPClassifier:
        x = check_inputs(x)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"y must be ({len(x)},) labels, got shape {y.shape}")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"need at least 2 classes to train a classifier, got {classes.tolist()}")
        y_idx = np.searchsorted(classes, y)
        if validation_data is None and self.validation_fraction > 0:
            from .data.datasets import train_valid_split

            x, y_idx, xv, yv = train_valid_split(x, y_idx, self.validation_fraction,
                                                 stratify=True, seed=self.random_state)
            validation_data = (xv, yv)
        elif validation_data is not None:
            xv = check_inputs(validation_data[0], x.shape[1])
            yv = np.searchsorted(classes, np.asarray(validation_data[1]))
            validation_data = (xv, yv)
        normalizer = Normalizer(self.normalization).fit(x)
        model, loss, opt = self.build(x.shape[1], len(classes))
        history = fit(model, loss, opt, x, y_idx, epochs=self.epochs, batch_size=self.batch_size,
                      preprocess=normalizer, validation_data=validation_data,
                      seed=self.random_state, early_stopping=self.early_stopping,
                      checkpoint=checkpoint, resume=resume, progress=self.verbose)
        self.history_: History = history
        self.classes_ = classes
        self.classifier_ = Classifier(model, loss, normalizer, classes.tolist(), {
            "training": {**self.get_params(), "hidden_sizes": list(self.hidden_sizes),
                         "optimizer_config": opt.config()},
        })
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
