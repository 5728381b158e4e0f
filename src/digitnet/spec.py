"""The run spec: one typed description of a training run, validated once.

A run is three tables, the layout of a recipe file (``src/digitnet/recipes/*.toml``)::

    [data]       dataset, file format, split, digits, normalisation
    [model]      hidden = [256], activation = "relu", ...   or   layers = [{type = "Linear", ...}, ...]
    [training]   loss, optimizer, lr, schedule, batch_size, epochs, seed, early stopping

Every entry point speaks it with the same names: ``digitnet train`` flags (``--batch-size``
sets ``training.batch_size``), ``digitnet train --config FILE`` (a TOML file or a run's own
``config.json``), the recipes (which add their ``[seed]`` facts and ``[improved]``
overrides), :class:`~digitnet.classifier.MLPClassifier`'s parameters, and the model file's
metadata. Each setting's name is unique across the tables, so a flat name (``lr``) is
enough to say which one is meant (:meth:`RunSpec.flat`, :meth:`RunSpec.replace`).

Options of a component sit beside its name: ``optimizer = "sgd"`` with ``momentum = 0.9``,
``loss = "mse"`` with ``reduction = "sum"``, ``schedule = "step"`` with ``gamma = 0.5``. An
option the chosen component does not take is an error naming both, raised here, before any
data is loaded. :func:`build` is the one place a spec becomes ``(model, loss, optimizer)``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import quirks  # noqa: F401  (registers the seeds' components like any other)
from .data import augment
from .data.datasets import CATALOGUE
from .data.scaling import NORMALIZATIONS, Normalizer
from .errors import SpecError
from .nn import INITIALIZERS, LAYERS, LOSSES, OPTIMIZERS, SCHEDULES, Sequential, UnknownComponentError
from .nn.layers import activation_names
from .nn.losses import Loss
from .nn.model import mlp_layers
from .nn.optim import Optimizer

__all__ = ["DataSpec", "ModelSpec", "TrainingSpec", "RunSpec", "Built", "build", "load_spec",
           "FORMATS", "SPLITS", "DATASETS"]

#: Datasets the data catalogue knows, by name (the number of classes, the image size as rows of
#: ``features`` values and as a ``(channels, height, width)`` image, the training images), from
#: :data:`digitnet.data.datasets.CATALOGUE`.
DATASETS: dict[str, dict[str, Any]] = {
    name: {"classes": info.n_classes, "features": 784, "image": (1, 28, 28), "train": info.n_train}
    for name, info in CATALOGUE.items()}
#: File formats a dataset can be read from (see :mod:`digitnet.data.catalog`).
FORMATS = ("idx", "mnist_pkl", "kaggle", "keras", "openml")
#: How validation (and, for formats without one, test) data are held out.
SPLITS = ("file", "stratified", "shuffle_head")

Check = Callable[[Any, str], Any]


# --------------------------------------------------------------------------- value checks
def _fail(key: str, problem: str) -> SpecError:
    error = SpecError(f"{key}: {problem}")
    error.key = key  # type: ignore[attr-defined]
    return error


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, (float, np.floating))) and math.isfinite(float(v))


def integer(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any, key: str) -> int:
        if not _is_int(v):
            raise _fail(key, f"expected a whole number, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise _fail(key, f"must be {bound}, got {v}")
        return int(v)
    return check


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> Check:
    def check(v: Any, key: str) -> float:
        if not _is_number(v):
            raise _fail(key, f"expected a finite number, got {v!r}")
        v = float(v)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise _fail(key, f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise _fail(key, f"must be {'<' if hi_open else '<='} {hi:g}, got {v:g}")
        return v
    return check


def boolean(v: Any, key: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise _fail(key, f"expected true or false, got {v!r}")
    return bool(v)


def one_of(choices: Iterable[str] | Callable[[], Iterable[str]],
           shown: Callable[[], Iterable[str]] | None = None) -> Check:
    """A name among ``choices``; ``shown`` (default: all of them) are the ones messages list
    (the canonical names, without aliases)."""
    def options() -> list[str]:
        return list(choices() if callable(choices) else choices)

    def listed() -> list[str]:
        return list(shown()) if shown is not None else options()

    def check(v: Any, key: str) -> str:
        if not isinstance(v, str) or v not in options():
            raise _fail(key, f"expected one of {', '.join(listed())}; got {v!r}")
        return v
    check.choices = listed  # type: ignore[attr-defined]  (for --help)
    return check


def optional(inner: Check) -> Check:
    def check(v: Any, key: str) -> Any:
        return None if v is None else inner(v, key)
    if hasattr(inner, "choices"):
        check.choices = inner.choices  # type: ignore[attr-defined]
    return check


def int_tuple(lo: int, *, min_len: int = 0, distinct: bool = False, hi: int | None = None) -> Check:
    def check(v: Any, key: str) -> tuple[int, ...]:
        if not isinstance(v, (list, tuple)):
            raise _fail(key, f"expected a list of whole numbers, got {v!r}")
        values = tuple(integer(lo, hi)(x, key) for x in v)
        if len(values) < min_len:
            raise _fail(key, f"needs at least {min_len} values, got {list(values)}")
        if distinct and len(set(values)) != len(values):
            raise _fail(key, f"values must be distinct, got {list(values)}")
        return values
    return check


def betas(v: Any, key: str) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise _fail(key, f"expected two numbers [beta1, beta2], got {v!r}")
    return tuple(number(0.0, 1.0, hi_open=True)(x, key) for x in v)  # type: ignore[return-value]


def count_or_fraction(v: Any, key: str) -> int | float:
    """A count of samples (whole number >= 0) or a fraction of them (0 <= f < 1)."""
    if _is_int(v):
        return integer(0)(v, key)
    return number(0.0, 1.0, hi_open=True)(v, key)


def initializer(v: Any, key: str) -> str | dict[str, Any]:
    """An initialiser's name or ``{name = ..., options}``, checked by building it once."""
    if not isinstance(v, (str, dict)):
        raise _fail(key, f"expected an initialiser name or table, got {v!r}")
    try:
        INITIALIZERS.create(v)
    except (UnknownComponentError, ValueError, TypeError) as exc:
        raise _fail(key, str(exc)) from None
    return v if isinstance(v, str) else dict(v)


def layer_list(v: Any, key: str) -> tuple[dict[str, Any], ...]:
    """``[{type = "Linear", out_features = 256}, {type = "ReLU"}, ...]``: every type registered,
    every option one the layer takes (``in_features`` may be left out: it follows from the
    layer below; so may the last Linear's ``out_features``: it follows from the classes)."""
    if not isinstance(v, (list, tuple)) or not v:
        raise _fail(key, f"expected a non-empty list of layer tables, got {v!r}")
    layers = []
    for i, entry in enumerate(v):
        where = f"{key}[{i}]"
        if not isinstance(entry, Mapping) or "type" not in entry:
            raise _fail(where, f"expected a table with a 'type', got {entry!r}")
        try:
            accepted = set(LAYERS.options(entry["type"])) - {"rng", "dtype"}
        except UnknownComponentError as exc:
            raise _fail(where, str(exc)) from None
        unknown = sorted(set(entry) - accepted - {"type"})
        if unknown:
            raise _fail(where, f"layer {entry['type']!r} takes no option {', '.join(map(repr, unknown))}"
                               f" (its options: {', '.join(sorted(accepted)) or 'none'})")
        for init_key in ("weight_init", "bias_init"):
            if init_key in entry:
                initializer(entry[init_key], f"{where}.{init_key}")
        layers.append(dict(entry))
    return tuple(layers)


def augmentations(v: Any, key: str) -> dict[str, dict[str, float]]:
    """Augmentation names (``["affine", "elastic"]``) or a table ``{affine = {rotation = 15}}``."""
    try:
        return augment.check_config(v, key)
    except ValueError as exc:
        raise _fail(key, str(exc).split(": ", 1)[-1]) from None


def setting(default: Any, check: Check, help: str, *, flag: bool = True, metavar: str | None = None,
            group: str | None = None, parse: Callable[[str], Any] | None = None) -> Any:
    """A spec field: its default, how to check a value, what it means (the ``--help`` text),
    whether ``digitnet train`` has a flag for it (and how to parse the flag's text, if not by
    the field's type), and which component's options it is among."""
    meta = {"check": check, "help": help, "flag": flag, "metavar": metavar, "group": group, "parse": parse}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- the tables
class _Table:
    """Checks every setting of a table when it is made (directly, from a file, or by
    ``replace``), storing the checked value (lists become tuples)."""

    table = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = f.metadata["check"](getattr(self, f.name), f"{self.table}.{f.name}")
            object.__setattr__(self, f.name, value)


@dataclass(frozen=True)
class DataSpec(_Table):
    """``[data]``: which images, how they are split, and how pixels become inputs."""

    table = "data"

    dataset: str = setting("mnist", one_of(lambda: DATASETS), "dataset to train on")
    format: str = setting("idx", one_of(FORMATS), "file format to read the dataset from (the seeds' "
                          "formats: idx, mnist_pkl, kaggle, keras, openml)", flag=False)
    split: str = setting("stratified", one_of(SPLITS),
                         "how validation data are held out: stratified (a class-balanced random "
                         "sample of the training images), file (as the file stores them), "
                         "shuffle_head (the first valid_size rows after a shuffle)", flag=False)
    valid_size: int | float | None = setting(None, optional(count_or_fraction),
                                             "training images held out for validation: a count, or a "
                                             "fraction below 1; 0 for none (default: 5000; with split = "
                                             "file, the file's own validation part)", metavar="N")
    test_size: int | None = setting(None, optional(integer(1)),
                                    "images held out for testing when the file has no test split "
                                    "(stratified split only)", flag=False)
    split_seed: int | None = setting(None, optional(integer(0)),
                                     "seed of the split (default: the training seed)", flag=False)
    digits: tuple[int, ...] | None = setting(None, optional(int_tuple(0, min_len=2, distinct=True)),
                                             "train on these classes only, by label, e.g. 0,1 (digits 0 "
                                             "and 1)", metavar="DIGITS")
    normalization: str = setting("unit", one_of(NORMALIZATIONS),
                                 "input scaling (unit: x/255; symmetric: [-1, 1]; unit256, "
                                 "minmax_batched, column_zscore: the seeds' own)")
    eval_normalization: str | None = setting(None, optional(one_of(NORMALIZATIONS)),
                                             "scaling of validation and test images, if not the "
                                             "training one (a seed's defect)", flag=False)
    stat_batch: int | None = setting(None, optional(integer(1)),
                                     "batch the minmax_batched statistics are taken over", flag=False,
                                     group="normalization")
    augment: dict[str, dict[str, float]] | None = setting(
        None, optional(augmentations),
        "random changes to each training image, comma-separated (affine: rotation, zoom, shear, shift; "
        "elastic: Simard's distortion; thickness; noise), with default strengths; a spec file can set "
        "them, e.g. [data.augment] affine = {rotation = 15}", metavar="KINDS",
        parse=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()))


@dataclass(frozen=True)
class ModelSpec(_Table):
    """``[model]``: an MLP by its hidden sizes and activation, or any stack of layers."""

    table = "model"

    hidden: tuple[int, ...] = setting((256,), int_tuple(1), "hidden layer sizes, comma-separated "
                                      "(none for a linear model)", metavar="SIZES")
    activation: str = setting("relu", one_of(lambda: [a for a in activation_names() if a != "softmax"]),
                              "activation after each hidden layer")
    dropout: float = setting(0.0, number(0.0, 1.0, hi_open=True), "dropout after each hidden activation")
    bias: bool = setting(True, boolean, "give every Linear layer a bias", flag=False)
    weight_init: str | dict | None = setting(None, optional(initializer),
                                             "weight initialiser (default: he_normal for ReLU, "
                                             "glorot_uniform otherwise)", flag=False)
    bias_init: str | dict = setting("zeros", initializer, "bias initialiser", flag=False)
    output_activation: str | None = setting(None, optional(one_of(lambda: activation_names())),
                                            "activation after the last layer (default: what the "
                                            "loss needs; sigmoid for mse)", flag=False)
    layers: tuple[dict[str, Any], ...] | None = setting(None, optional(layer_list),
                                                         "the network as a list of layer tables "
                                                         "(instead of hidden/activation/...)", flag=False)
    dtype: str = setting("float32", one_of(("float32", "float64")), "floating-point type of the network",
                         flag=False)


@dataclass(frozen=True)
class TrainingSpec(_Table):
    """``[training]``: loss, optimiser and schedule (each with its options), batches, epochs."""

    table = "training"

    loss: str = setting("cross_entropy", one_of(lambda: LOSSES.names(aliases=True), LOSSES.names),
                        "loss function")
    reduction: str | None = setting(None, optional(one_of(("mean", "sample", "sum"))),
                                    "how mse sums its errors", flag=False, group="loss")
    optimizer: str = setting("adam", one_of(lambda: OPTIMIZERS.names()), "optimiser")
    lr: float = setting(0.002, number(0.0, lo_open=True), "learning rate", group="optimizer")
    momentum: float | None = setting(None, optional(number(0.0, 1.0, hi_open=True)),
                                     "momentum (sgd, momentum, nesterov; default 0.9 for the last two)",
                                     group="optimizer")
    nesterov: bool | None = setting(None, optional(boolean), "Nesterov momentum (sgd)", flag=False,
                                    group="optimizer")
    weight_decay: float | None = setting(None, optional(number(0.0)),
                                         "L2 weight decay (adamw: decoupled, default 0.01)",
                                         group="optimizer")
    betas: tuple[float, float] | None = setting(None, optional(betas), "Adam's beta1, beta2", flag=False,
                                                group="optimizer")
    eps: float | None = setting(None, optional(number(0.0, lo_open=True)), "Adam's epsilon", flag=False,
                                group="optimizer")
    schedule: str = setting("cosine", one_of(lambda: SCHEDULES.names(aliases=True), SCHEDULES.names),
                            "learning-rate schedule over the epochs")
    warmup: int | None = setting(None, optional(integer(0)), "epochs of linear learning-rate warm-up",
                                 group="schedule")
    gamma: float | None = setting(None, optional(number(0.0, lo_open=True)),
                                  "decay factor (step, exponential schedules)", flag=False, group="schedule")
    step_size: int | None = setting(None, optional(integer(1)), "epochs between decays (step schedule)",
                                    flag=False, group="schedule")
    min_factor: float | None = setting(None, optional(number(0.0, 1.0)),
                                       "final fraction of the learning rate (cosine schedule)",
                                       flag=False, group="schedule")
    batch_size: int = setting(128, integer(0), "samples per step (0: the whole training set)")
    epochs: int = setting(10, integer(1), "passes over the training data")
    shuffle: bool = setting(True, boolean, "reshuffle the training data every epoch", flag=False)
    seed: int = setting(0, integer(0), "random seed: same seed, same data, same machine, same weights")
    early_stopping: int | None = setting(None, optional(integer(1)),
                                         "stop after this many epochs without improvement of the "
                                         "monitored score, and keep the best weights", metavar="PATIENCE")
    monitor: str = setting("val_loss", one_of(("val_loss", "val_accuracy")),
                           "score that decides the best epoch (and early stopping)")
    diagnostics: bool = setting(True, boolean, "record per-layer gradient norms, update ratios and dead or "
                                "saturated units every epoch", flag=False)


TABLES: dict[str, type] = {"data": DataSpec, "model": ModelSpec, "training": TrainingSpec}
#: Top-level keys a recipe may carry besides the three tables (ignored by training).
RECIPE_KEYS = ("name", "title", "notes", "seed", "improved")
#: Top-level tables other files add to a run spec, also ignored by training: a sweep file's
#: ``[sweep]`` (what to vary and how to search; read by :mod:`digitnet.sweep`).
OTHER_KEYS = ("sweep",)


def spec_fields() -> dict[str, tuple[str, dataclasses.Field]]:
    """Every setting by its flat name: ``{"lr": ("training", Field), ...}``."""
    out = {}
    for table, cls in TABLES.items():
        for f in dataclasses.fields(cls):
            assert f.name not in out, f"spec name {f.name!r} appears in two tables"
            out[f.name] = (table, f)
    return out


# --------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class RunSpec:
    """A whole run: ``data``, ``model`` and ``training`` tables (all defaults: the default recipe,
    784-256-10 ReLU, Adam at 0.002 with a cosine schedule, batch 128, 10 epochs)."""

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)

    def __post_init__(self) -> None:
        self._check_components()
        self._check_tables()

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], origin: str = "spec") -> RunSpec:
        """A spec from nested tables (a parsed TOML recipe or ``config.json``).

        Unknown tables or keys are errors that name them (with the nearest valid name)."""
        if not isinstance(d, Mapping):
            raise SpecError(f"{origin}: expected a table of [data], [model], [training], "
                            f"got {type(d).__name__}")
        extra = (*RECIPE_KEYS, *OTHER_KEYS)
        for key in d:
            if key not in TABLES and key not in extra:
                raise SpecError(f"{origin}: unknown table {key!r}{_nearest(key, [*TABLES, *extra])}; "
                                "a run spec has [data], [model] and [training]")
        tables = {}
        for name, table_cls in TABLES.items():
            values = d.get(name, {})
            if not isinstance(values, Mapping):
                raise SpecError(f"{origin}: [{name}] must be a table, got {values!r}")
            names = [f.name for f in dataclasses.fields(table_cls)]
            for key in values:
                if key not in names:
                    raise SpecError(f"{origin}: [{name}] has no setting {key!r}{_nearest(key, names)}; "
                                    f"its settings: {', '.join(names)}")
            try:
                tables[name] = table_cls(**values)
            except SpecError as exc:
                raise SpecError(f"{origin}: {exc}") from None
        try:
            return cls(**tables)
        except SpecError as exc:
            raise SpecError(f"{origin}: {exc}") from None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested tables of the settings that are set (None is left out), JSON- and TOML-able."""
        return {name: {k: _plain(v) for k, v in dataclasses.asdict(getattr(self, name)).items()
                       if v is not None}
                for name in TABLES}

    # -- the flat vocabulary -------------------------------------------------------------------
    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name (the names of flags and estimator parameters)."""
        return {name: getattr(getattr(self, table), name) for name, (table, _) in spec_fields().items()}

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with settings changed by flat name (``spec.replace(lr=0.01, hidden=(64,))``)."""
        known = spec_fields()
        by_table: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            if name not in known:
                raise SpecError(f"unknown setting {name!r}{_nearest(name, list(known))}")
            table, _ = known[name]
            by_table.setdefault(table, {})[name] = value
        return RunSpec(**{t: dataclasses.replace(getattr(self, t), **by_table.get(t, {})) for t in TABLES})

    # -- checks across settings ------------------------------------------------------------------
    def _check_tables(self) -> None:
        d, m, t = self.data, self.model, self.training
        if d.test_size is not None and d.split != "stratified":
            raise _fail("data.test_size", f"applies to the stratified split only (split is {d.split!r})")
        if d.augment is not None and d.normalization not in Normalizer.METHODS:
            raise _fail("data.augment", f"needs a per-batch normalization, not {d.normalization!r} "
                                        "(which scales the whole training set before training)")
        if d.stat_batch is not None and "minmax_batched" not in (d.normalization, d.eval_normalization):
            raise _fail("data.stat_batch", "applies to normalization = 'minmax_batched' only")
        if m.layers is not None:
            given = [f.name for f in dataclasses.fields(ModelSpec)
                     if f.name not in ("layers", "dtype") and getattr(m, f.name) != f.default]
            if given:
                raise _fail("model.layers", f"give either layers or {', '.join(given)}, not both "
                                            "(the layer tables say everything)")
        n_known = DATASETS[d.dataset]["classes"]
        if d.digits and max(d.digits) >= n_known:
            raise _fail("data.digits", f"{d.dataset} has the classes 0..{n_known - 1}, got {list(d.digits)}")
        if d.format != "idx" and d.dataset != "mnist":
            raise _fail("data.format", f"the {d.format} format holds MNIST only; {d.dataset} is read from "
                                       "its IDX files (format = 'idx')")
        n_classes = len(d.digits) if d.digits else n_known
        try:
            LOSSES.create({"name": t.loss, **self.component_options("loss")}).outputs_for(n_classes)
        except ValueError as exc:
            hint = "" if d.digits else "; choose two digits, e.g. digits = [0, 1] (--digits 0,1)"
            raise _fail("training.loss", f"{exc}{hint}") from None

    def _check_components(self) -> None:
        """Each option set must be one the chosen component takes."""
        t = self.training
        for group, registry, chosen in (("loss", LOSSES, t.loss), ("optimizer", OPTIMIZERS, t.optimizer),
                                        ("schedule", SCHEDULES, t.schedule)):
            accepted = registry.options(chosen)
            for f in dataclasses.fields(TrainingSpec):
                if f.metadata["group"] != group or getattr(t, f.name) is None:
                    continue
                if f.name not in accepted:
                    group_names = [g.name for g in dataclasses.fields(TrainingSpec)
                                   if g.metadata["group"] == group]
                    takes = [o for o in accepted if o in group_names]
                    raise _fail(f"training.{f.name}",
                                f"does not apply to the {chosen} {registry.kind}"
                                + (f" (it takes {', '.join(takes)})" if takes else " (it takes no options)"))
        has_schedule = "schedule" in OPTIMIZERS.options(t.optimizer)
        if not has_schedule and SCHEDULES.canonical(t.schedule) != "constant":
            raise _fail("training.schedule", f"the {t.optimizer} optimizer has no schedule; "
                                             "set schedule = 'constant'")

    def component_options(self, group: str) -> dict[str, Any]:
        """The options of the loss, optimizer or schedule that are set, by name."""
        t = self.training
        return {f.name: _plain(getattr(t, f.name)) for f in dataclasses.fields(TrainingSpec)
                if f.metadata["group"] == group and getattr(t, f.name) is not None}


def _plain(v: Any) -> Any:
    """Tuples to lists (JSON and TOML have no tuples), recursively."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _nearest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_spec(path: str | Path) -> tuple[RunSpec, dict[str, Any]]:
    """A spec from a TOML file or a run's ``config.json``; also returns the whole parsed
    document (a recipe's ``[seed]`` facts and ``[improved]`` overrides ride along)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read it as text ({exc})") from None
    try:
        document = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise SpecError(f"{path}: not valid {kind} ({exc})") from None
    if isinstance(document, dict) and "spec" in document and path.suffix.lower() == ".json":
        document = document["spec"]  # a model file's metadata exported as JSON
    return RunSpec.from_dict(document, str(path)), document if isinstance(document, dict) else {}


# --------------------------------------------------------------------------- building
#: What :func:`build` makes: an untrained network, its loss and its optimiser; it unpacks as
#: ``model, loss, optimizer = build(...)``. (The functional form keeps the field types real
#: classes rather than strings, so documentation tools can resolve them.)
Built = NamedTuple("Built", [("model", Sequential), ("loss", Loss), ("optimizer", Optimizer)])  # noqa: UP014
Built.__doc__ = "What :func:`build` makes: an untrained network, its loss and its optimiser."


def layer_configs(spec: RunSpec, n_features: int, n_outputs: int, loss: Loss) -> list[dict[str, Any]]:
    """The network's layer tables, with every size filled in from the data.

    Each layer is sized by the shape of what the layer below gives (``Layer.infer``): a
    Linear's ``in_features``, a Conv2D's ``in_channels``, a BatchNorm's ``num_features``; the
    last Linear's ``out_features`` follows from the classes. The data are rows of
    ``n_features`` pixels; a network that starts with a layer taking images (Conv2D, a pooling
    layer) gets an ``Unflatten`` to the dataset's image shape, ``(1, 28, 28)`` for MNIST, in
    front. Sizes that do not fit are errors naming the layer."""
    m = spec.model
    if m.layers is None:
        out_act = m.output_activation if m.output_activation is not None else loss.output_activation
        return mlp_layers([n_features, *m.hidden, n_outputs], activation=m.activation,
                          output_activation=out_act, bias=m.bias, weight_init=m.weight_init,
                          bias_init=m.bias_init, dropout=m.dropout)
    layers = [dict(entry) for entry in m.layers]
    sized = [i for i, entry in enumerate(layers) if "out_features" in LAYERS.options(entry["type"])]
    if not sized:
        raise _fail("model.layers", "the network needs at least one Linear layer")
    for i in sized[:-1]:
        if "out_features" not in layers[i]:
            raise _fail(f"model.layers[{i}]", "needs out_features (only the last Linear layer's "
                                              "follows from the classes)")
    layers[sized[-1]].setdefault("out_features", n_outputs)
    names = [f"model.layers[{i}]" for i in range(len(layers))]
    image = tuple(DATASETS[spec.data.dataset]["image"])
    if LAYERS.get(layers[0]["type"]).input_ndim == 3:
        if math.prod(image) != n_features:
            raise _fail("model.layers[0]", f"takes images, but the data are rows of {n_features} values")
        layers.insert(0, {"type": "Unflatten", "shape": list(image)})
        names.insert(0, "model.layers (the Unflatten in front)")
    shape: tuple[int, ...] = (n_features,)
    for i, entry in enumerate(layers):
        try:
            layers[i], shape = LAYERS.get(entry["type"]).infer(entry, shape)
        except (ValueError, TypeError) as exc:
            raise _fail(names[i], str(exc)) from None
    features = layers[sized[-1] + (len(layers) - len(m.layers))]["out_features"]
    if shape != (n_outputs,):
        what = f"the last Linear layer gives {features} outputs" if shape == (features,) else \
            f"the network gives outputs of shape {shape}"
        raise _fail("model.layers", f"{what}, but the {spec.training.loss} loss needs {n_outputs} "
                                    "for these classes")
    return layers


def build(spec: RunSpec, n_features: int, n_classes: int, n_train: int | None = None) -> Built:
    """The untrained network, loss and optimiser ``spec`` describes, for ``n_features`` inputs
    and ``n_classes`` classes (``n_train``: training samples, the batch of a full-batch run).
    Weights come from ``np.random.default_rng(training.seed)``."""
    t = spec.training
    try:
        loss = LOSSES.create({"name": t.loss, **spec.component_options("loss")})
        n_outputs = loss.outputs_for(n_classes)
    except (UnknownComponentError, ValueError) as exc:
        raise _fail("training.loss", str(exc)) from None
    layers = layer_configs(spec, n_features, n_outputs, loss)
    try:
        model = Sequential.from_config({"layers": layers, "input_shape": [n_features]}, rng=t.seed,
                                       dtype=spec.model.dtype)
    except (UnknownComponentError, ValueError, TypeError) as exc:
        raise _fail("model", str(exc)) from None
    options = spec.component_options("optimizer")
    if "schedule" in OPTIMIZERS.options(t.optimizer):
        options["schedule"] = {"name": t.schedule, **spec.component_options("schedule")}
    batch = t.batch_size or n_train
    try:
        optimizer = OPTIMIZERS.create({"name": t.optimizer, **options}, batch_size=batch)
    except (UnknownComponentError, ValueError) as exc:
        raise _fail("training.optimizer", str(exc)) from None
    return Built(model, loss, optimizer)


def dry_build(spec: RunSpec) -> None:
    """Build once for the dataset's nominal shape, so that every error in the spec shows
    before any data is loaded."""
    info = DATASETS[spec.data.dataset]
    n_classes = len(spec.data.digits) if spec.data.digits else info["classes"]
    build(spec, info["features"], n_classes, info["train"])
