"""A scikit-learn estimator around digitnet's training: :class:`MLPClassifier`.

It works in scikit-learn's tools (``clone``, ``Pipeline``, ``GridSearchCV``,
``cross_val_score``) and passes ``check_estimator``. Its parameters are the run spec's
settings, by the same names as ``digitnet train``'s options and ``config.json`` (see
:mod:`digitnet.spec`), and they are checked by the spec when ``fit`` runs (a bad value is a
:class:`~digitnet.errors.SpecError`, which is a ``ValueError``). Training goes through
:func:`digitnet.classifier.train_classifier`, like ``digitnet train``.

This is the only module of digitnet that imports scikit-learn (the ``sklearn`` extra).
A pickle of a fitted estimator holds its settings and weights only, never gradients,
optimiser state or scratch buffers; ``joblib.load(path, mmap_mode="r")`` gives an
estimator whose weights stay memory-mapped and that predicts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .classifier import Classifier, train_classifier
from .data.datasets import train_valid_split
from .data.scaling import Normalizer
from .errors import SpecError
from .nn import LOSSES, Sequential, UnknownComponentError
from .nn.optim import Optimizer
from .prepare import PreparedData
from .spec import DataSpec, ModelSpec, RunSpec, TrainingSpec, build
from .train import History

__all__ = ["MLPClassifier", "ESTIMATOR_ONLY", "NOT_PARAMETERS"]

#: Parameters of the estimator that are not run-spec settings.
ESTIMATOR_ONLY = ("warm_start", "verbose")
#: Spec settings that are not parameters: they say where data come from and how the files
#: split, which the arrays given to ``fit`` already settle.
NOT_PARAMETERS = ("dataset", "format", "split", "test_size", "split_seed", "digits",
                  "eval_normalization", "stat_batch")
#: Settings that a ``partial_fit`` pass leaves out: one pass has no schedule to follow and
#: no epochs to stop early in.
_ONE_PASS = {"schedule": "constant", "warmup": None, "gamma": None, "step_size": None,
             "min_factor": None, "early_stopping": None, "epochs": 1}


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multilayer perceptron (or any stack of registered layers) trained by digitnet.

    >>> clf = MLPClassifier(hidden=(256,), epochs=10, seed=0)
    >>> clf.fit(x_train, y_train).score(x_test, y_test)

    Parameters are the run spec's settings (``hidden``, ``activation``, ``lr``,
    ``batch_size``, ``epochs``, ``seed``, ...; defaults are the spec's), plus:

    * ``valid_size`` (default none): hold out that many training samples (or that
      fraction), stratified, to validate on after each epoch (``validation_scores_``,
      and what ``early_stopping`` watches);
    * ``warm_start``: a second ``fit`` continues from the weights of the first (the same
      network and classes) with a new optimiser, instead of starting again;
    * ``verbose``: a progress bar.

    ``normalization`` scales each input (``unit`` is x/255, for 0-255 pixels; ``zscore``
    for features of any scale). After ``fit``: ``classes_``, ``n_features_in_``,
    ``loss_curve_`` (mean training loss per epoch), ``validation_scores_`` (validation
    accuracy per epoch, or None without validation data), ``best_validation_score_``,
    ``n_iter_`` (epochs run), ``history_`` (the whole :class:`~digitnet.train.History`)
    and ``classifier_`` (the trained :class:`~digitnet.classifier.Classifier`).
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
        diagnostics: bool = True,
        normalization: str = "unit",
        valid_size: int | float | None = None,
        augment: dict[str, dict[str, float]] | tuple[str, ...] | None = None,
        warm_start: bool = False,
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
        self.diagnostics = diagnostics
        self.normalization = normalization
        self.valid_size = valid_size
        self.augment = augment
        self.warm_start = warm_start
        self.verbose = verbose

    # -- the spec --------------------------------------------------------------------------
    def to_spec(self) -> RunSpec:
        """The run spec these parameters describe (validated: a bad value is a SpecError)."""
        params = self.get_params(deep=False)
        tables = {}
        for name, cls in (("data", DataSpec), ("model", ModelSpec), ("training", TrainingSpec)):
            own = {f.name for f in dataclasses.fields(cls)}
            tables[name] = {k: v for k, v in params.items() if k in own and v is not None}
        tables["data"]["split"] = "file"  # the estimator splits for itself (valid_size, in fit)
        tables["data"].pop("valid_size", None)
        spec = RunSpec.from_dict(tables, "MLPClassifier")
        if spec.data.normalization not in Normalizer.METHODS:
            raise SpecError(f"data.normalization: {spec.data.normalization!r} scales a whole set at once; "
                            f"the estimator takes {', '.join(Normalizer.METHODS)}")
        if self.valid_size is not None:
            DataSpec(valid_size=self.valid_size)  # the same check as a run's
        for name in ESTIMATOR_ONLY:
            if not isinstance(params[name], (bool, np.bool_)):
                raise SpecError(f"{name}: expected true or false, got {params[name]!r}")
        return spec

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "classifier_")

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, validation_data: tuple[Any, Any] | None = None,
            checkpoint: str | Path | None = None, resume: bool = False) -> MLPClassifier:
        """Train on ``X`` ``(n, d)`` and labels ``y`` ``(n,)`` for ``epochs`` epochs.

        ``validation_data=(X_val, y_val)`` validates on that set after each epoch (instead of
        holding out ``valid_size``); ``checkpoint``/``resume`` as in
        :func:`digitnet.train.fit`. With ``warm_start`` and a fitted estimator, training
        continues from the current weights."""
        spec = self.to_spec()
        warm = self.warm_start and self.__sklearn_is_fitted__()
        X, y = validate_data(self, X, y, dtype="numeric", reset=not warm)
        check_classification_targets(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has 1 class ({classes[0]!r}); a classifier needs at least 2 classes")
        if warm and not _same_labels(classes, self.classes_):
            raise ValueError("warm_start continues a network that knows the classes "
                             f"{self.classes_.tolist()}; y has {classes.tolist()} (set warm_start=False "
                             "to start again)")
        x_valid, y_valid = X[:0], y_idx[:0]
        if validation_data is not None:
            x_valid = validate_data(self, validation_data[0], dtype="numeric", reset=False)
            y_valid = _indices(classes, np.asarray(validation_data[1]), "validation_data")
        elif self.valid_size:
            X, y_idx, x_valid, y_valid = train_valid_split(X, y_idx, self.valid_size, stratify=True,
                                                           seed=self.seed)
        start = self.classifier_ if warm else None
        normalizer = start.normalizer if start else Normalizer(spec.data.normalization).fit(X)
        data = PreparedData(X, y_idx, x_valid, y_valid, X[:0], y_idx[:0], _file_classes(classes),
                            normalizer, normalizer, normalizer)
        if start is not None:
            _writable(start.model)
        clf, history = self._train(spec, data, start, None, checkpoint=checkpoint, resume=resume)
        self._fitted(clf, history, classes, extend=warm)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One pass over ``(X, y)``, continuing the network (and its optimiser) of earlier calls.

        The first call (on an unfitted estimator) needs ``classes``, every label there will
        be; it builds the network and fits the normaliser on this first ``X``. A pass runs at
        the base learning rate (the schedule belongs to ``fit``'s epochs) with no early
        stopping; each pass shuffles with its own seed (``seed + n_iter_``)."""
        first = not self.__sklearn_is_fitted__()
        if first and classes is None:
            raise ValueError("classes must be given on the first call to partial_fit: every label y may hold")
        spec = self.to_spec()
        X, y = validate_data(self, X, y, dtype="numeric", reset=first)
        check_classification_targets(y)
        if first:
            known = np.unique(np.asarray(classes))
            if len(known) < 2:
                raise ValueError(f"classes has {len(known)} class; a classifier needs at least 2 classes")
        else:
            known = self.classes_
            if classes is not None and not _same_labels(np.unique(np.asarray(classes)), known):
                raise ValueError(f"classes {np.unique(classes).tolist()} differ from those of the first "
                                 f"call, {known.tolist()}")
        y_idx = _indices(known, y, "y")
        one_pass = spec.replace(**_ONE_PASS, seed=self.seed + (0 if first else self.n_iter_))
        if first:
            normalizer = Normalizer(spec.data.normalization).fit(X)
            built = build(one_pass, X.shape[1], len(known), len(X))
            start = Classifier(built.model, built.loss, normalizer, _file_classes(known))
            self._optimizer = built.optimizer
        else:
            start = self.classifier_
            _writable(start.model)
            if getattr(self, "_optimizer", None) is None:  # an unpickled estimator: a new optimiser
                self._optimizer = build(one_pass, X.shape[1], len(known), len(X)).optimizer
        data = PreparedData(X, y_idx, X[:0], y_idx[:0], X[:0], y_idx[:0], list(start.classes),
                            start.normalizer, start.normalizer, start.normalizer)
        clf, history = self._train(one_pass, data, start, self._optimizer)
        self._fitted(clf, history, known, extend=not first)
        return self

    def _train(self, spec: RunSpec, data: PreparedData, start: Classifier | None,
               optimizer: Optimizer | None, **options: Any) -> tuple[Classifier, History]:
        if spec.data.augment and data.n_features != 28 * 28:
            raise SpecError(f"augment: the augmentations distort 28x28 images; these samples have "
                            f"{data.n_features} features")
        try:
            return train_classifier(spec, data, start=start, optimizer=optimizer,
                                    progress=bool(self.verbose), **options)
        except UnknownComponentError as exc:
            raise SpecError(str(exc)) from None

    def _fitted(self, clf: Classifier, history: History, classes: np.ndarray, *, extend: bool) -> None:
        """Set the fitted attributes; ``extend`` adds the new epochs to those of earlier calls."""
        if extend:
            history = _joined(self.history_, history)
        self.classifier_ = clf
        self.history_ = history
        self.classes_ = classes
        self.n_iter_ = len(history.loss)
        self.loss_curve_ = list(history.loss)
        scores = [v for v in history.val_accuracy if np.isfinite(v)]
        self.validation_scores_ = list(history.val_accuracy) if scores else None
        self.best_validation_score_ = max(scores) if scores else None

    # -- predicting ------------------------------------------------------------------------
    def _inputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype="numeric", reset=False)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels ``(n,)``, from ``classes_``."""
        X = self._inputs(X)
        return self.classes_[self.classifier_.loss.predict_labels(self.classifier_.decision_function(X))]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, len(classes_))``; rows sum to 1."""
        X = self._inputs(X)
        return self.classifier_.predict_proba(X)

    def save(self, path: str | Path) -> Path:
        """Write the trained network as a digitnet model file (``digitnet evaluate``,
        ``serve``, ``export`` read it); model files hold integer class labels."""
        check_is_fitted(self)
        if not _whole_numbers(self.classes_):
            raise ValueError(f"a model file holds integer class labels; these are {self.classes_.tolist()}")
        return self.classifier_.save(path)

    # -- pickling: settings and weights only -------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: the estimator itself keeps everything
        state.pop("_optimizer", None)
        clf = state.pop("classifier_", None)
        if clf is not None:
            state["classifier_"] = _frozen(clf)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        frozen = state.get("classifier_")
        if isinstance(frozen, dict):
            state = {**state, "classifier_": _thawed(frozen)}
        super().__setstate__(state)


# --------------------------------------------------------------------------- helpers
def _same_labels(a: np.ndarray, b: np.ndarray) -> bool:
    return len(a) == len(b) and bool(np.all(a == b))


def _indices(classes: np.ndarray, y: np.ndarray, what: str) -> np.ndarray:
    """Class indices ``0..k-1`` of labels ``y``; a label outside ``classes`` is a ValueError."""
    y = np.asarray(y).reshape(-1)
    idx = np.searchsorted(classes, y)
    unknown = (idx >= len(classes)) | (classes[np.minimum(idx, len(classes) - 1)] != y)
    if np.any(unknown):
        raise ValueError(f"{what} holds labels outside the classes {classes.tolist()}: "
                         f"{np.unique(y[unknown]).tolist()[:5]}")
    return idx.astype(np.int64)


def _whole_numbers(classes: np.ndarray) -> bool:
    return classes.dtype.kind in "iu" or (classes.dtype.kind == "f" and bool(np.all(np.mod(classes, 1) == 0)))


def _file_classes(classes: np.ndarray) -> list[int]:
    """The classes as a model file stores them: the labels when they are whole numbers,
    else their indices (the estimator maps indices back to ``classes_``)."""
    return [int(c) for c in classes] if _whole_numbers(classes) else list(range(len(classes)))


def _writable(model: Sequential) -> None:
    """Give read-only parameters (a memory-mapped model) writable copies before training."""
    for layer in model.layers:
        for key, p in layer.params.items():
            if type(p) is not np.ndarray or not p.flags.writeable:
                layer.params[key] = np.array(p)


def _joined(before: History, after: History) -> History:
    """One history of two training calls, the second's epochs numbered after the first's."""
    offset = len(before.loss)
    joined = History(monitor=after.monitor, stopped_early=after.stopped_early,
                     best_epoch=None if after.best_epoch is None else after.best_epoch + offset)
    for f in ("loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        setattr(joined, f, list(getattr(before, f)) + list(getattr(after, f)))
    joined.epoch = list(range(1, len(joined.loss) + 1))
    return joined


def _frozen(clf: Classifier) -> dict[str, Any]:
    """What a pickle keeps of a classifier: its description and its weights (the arrays
    themselves, so joblib can memory-map them)."""
    model = clf.model
    return {"architecture": model.config(), "dtype": str(model.dtype), "loss": clf.loss.config(),
            "normalization": clf.normalizer.to_dict(), "classes": list(clf.classes),
            "metadata": clf.metadata, "weights": dict(model.named_parameters())}


def _thawed(frozen: dict[str, Any]) -> Classifier:
    """The classifier :func:`_frozen` describes, its weights used as they come (no copies)."""
    model = Sequential.from_config(frozen["architecture"], dtype=np.dtype(frozen["dtype"]))
    model.load_state_dict(frozen["weights"], copy=False)
    model.eval()
    return Classifier(model, LOSSES.create(frozen["loss"]), Normalizer.from_dict(frozen["normalization"]),
                      list(frozen["classes"]), frozen["metadata"])
