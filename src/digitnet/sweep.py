"""Hyperparameter sweeps on Ray Tune: many runs of one spec with some settings varied.

A sweep file is a run spec (``[data]``, ``[model]``, ``[training]``) plus a ``[sweep]`` table::

    [sweep]
    search = "random"            # grid, random, or tpe (Optuna's TPE through Ray Tune)
    trials = 12                  # random and tpe; a grid runs every combination
    metric = "val_accuracy"      # or val_loss; never the test set
    parallel = 2                 # trials at once (default: as many as the CPUs allow)
    early_stop = "asha"          # stop poor trials early; grace_period, reduction_factor beside it
    [sweep.params]
    hidden = {choices = [[128], [256], [512]]}
    lr = {log_range = [1e-4, 1e-2]}
    dropout = {range = [0.0, 0.5]}

Each name in ``[sweep.params]`` is a ``[model]`` or ``[training]`` setting, by its flat name,
or ``augment`` (``augment = {choices = [["affine"], ["affine", "elastic"]]}``: augmentation
happens batch by batch during training); the other ``[data]`` settings stay fixed, because
the data are prepared once, put into Ray's object store, and read by every trial without
copying. Every trial is an ordinary run directory
(``DIR/trials/<trial>``), trained by :func:`digitnet.experiment.run_training` like ``digitnet
train``; a trial that fails is recorded with its error and the others go on. The sweep writes
``DIR/sweep.json`` (the sweep file, then every trial's parameters, score, epochs, seconds and
status), ``DIR/best_config.json`` (the best trial's spec: ``digitnet train --config`` replays
it) and ``DIR/sweep.html`` (a parallel-coordinates plot of the trials). Ray Tune keeps its
own state in ``DIR/ray``, so an interrupted sweep resumes where it stopped.

Ray is imported only when a sweep runs (``pip install -e ".[sweep]"``). With no address it
starts a local Ray runtime on this machine's cores, on the loopback interface only; with an
address it joins an existing Ray cluster (whose nodes must all see ``DIR``).
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import itertools
import json
import logging
import math
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DigitnetError, SpecError
from .experiment import load_data, run_training
from .prepare import PreparedData
from .runs import is_run_dir, load_run, new_run_dir, partial_path, write_json
from .spec import RunSpec, dry_build, spec_fields
from .train import History

__all__ = ["Param", "Sweep", "SweepError", "SweepResult", "TrialRow", "parse_sweep", "load_sweep",
           "check_trials", "run_sweep", "run_trial", "start_ray", "format_table", "SEARCHES", "METRICS"]

SEARCHES = ("grid", "random", "tpe")
#: What a sweep may optimise, and in which direction. The test set is never among them.
METRICS = {"val_accuracy": "max", "val_loss": "min"}
KINDS = ("choices", "range", "log_range")
EARLY_STOPS = ("asha",)
SWEEP_KEYS = ("search", "trials", "metric", "parallel", "cpus_per_trial", "seed", "early_stop",
              "grace_period", "reduction_factor", "params")
ASHA_OPTIONS = ("grace_period", "reduction_factor")
DEFAULT_TRIALS = 10
#: How many combinations of the parameters' extreme values are checked before Ray starts.
MAX_CHECKED = 64

SWEEP_FILE, BEST_CONFIG, PAGE, TRIALS_DIR, RAY_DIR = "sweep.json", "best_config.json", "sweep.html", \
    "trials", "ray"
Log = Callable[[str], None]


class SweepError(DigitnetError):
    """A sweep cannot run: Ray is missing or unreachable, or the output directory is in the way."""


def _fail(key: str, problem: str, origin: str = "") -> SpecError:
    error = SpecError(f"{origin}: {key}: {problem}" if origin else f"{key}: {problem}")
    error.key = key  # type: ignore[attr-defined]
    return error


def _nearest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _plain(value: Any) -> Any:
    """Tuples to lists, numpy scalars to Python numbers (for JSON)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- the [sweep] table
@dataclass(frozen=True)
class Param:
    """One setting a sweep varies: a list of ``choices``, a uniform ``range`` or a log-uniform
    ``log_range`` (``values`` is then ``(low, high)``, both included; whole numbers for an
    integer setting)."""

    name: str
    kind: str
    values: tuple[Any, ...]
    integer: bool = False

    def domain(self, grid: bool) -> Any:
        """The Ray Tune search space of this parameter. Choices are given to Ray by their
        index (Optuna's categorical distributions take only scalars, and a choice may be a
        list such as ``hidden = [128, 64]``); :meth:`value` turns the index back."""
        from ray import tune

        if self.kind == "choices":
            indices = list(range(len(self.values)))
            return tune.grid_search(indices) if grid else tune.choice(indices)
        low, high = self.values
        if self.kind == "range":
            return tune.randint(low, high + 1) if self.integer else tune.uniform(low, high)
        return tune.lograndint(low, high + 1) if self.integer else tune.loguniform(low, high)

    def value(self, sampled: Any) -> Any:
        """The setting's value for what Ray sampled (a choice's index, or a number)."""
        if self.kind == "choices":
            return self.values[int(sampled)]
        return int(sampled) if self.integer else float(sampled)

    def extremes(self) -> tuple[Any, ...]:
        """The values that bound what can be sampled: every choice, or both ends of a range."""
        return self.values

    def describe(self) -> str:
        if self.kind == "choices":
            return "one of " + ", ".join(format_value(v) for v in self.values)
        how = "uniform" if self.kind == "range" else "log-uniform"
        whole = " whole numbers" if self.integer else ""
        return f"{how}{whole} in [{format_value(self.values[0])}, {format_value(self.values[1])}]"

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: _plain(list(self.values))}


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: the base spec every trial starts from, the parameters it varies,
    and how to search them (see the module docstring for the ``[sweep]`` keys)."""

    base: RunSpec
    params: tuple[Param, ...]
    search: str = "random"
    trials: int = DEFAULT_TRIALS
    metric: str = "val_accuracy"
    parallel: int | None = None
    cpus_per_trial: int = 1
    seed: int = 0
    early_stop: str | None = None
    grace_period: int = 1
    reduction_factor: int = 3
    document: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``: which way the metric is better."""
        return METRICS[self.metric]

    @property
    def max_epochs(self) -> int:
        """The most epochs a trial can train (the ASHA scheduler's horizon)."""
        epochs = [self.base.training.epochs]
        for p in self.params:
            if p.name == "epochs":
                epochs.extend(int(v) for v in p.extremes())
        return max(epochs)

    def spec_for(self, values: Mapping[str, Any]) -> RunSpec:
        """The run spec of the trial that sets ``values`` (flat names)."""
        return self.base.replace(**values)

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats score ``b``."""
        return a > b if self.mode == "max" else a < b


def _check_int(v: Any, key: str, lo: int, origin: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise _fail(key, f"expected a whole number >= {lo}, got {v!r}", origin)
    return v


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_param(name: str, entry: Any, origin: str) -> Param:
    key = f"sweep.params.{name}"
    fields = spec_fields()
    if name not in fields:
        raise _fail(key, f"not a setting of the run spec{_nearest(name, list(fields))}", origin)
    table, f = fields[name]
    if table == "data" and name != "augment":
        raise _fail(key, "[data] settings stay fixed in a sweep (the data are prepared once and shared "
                         "by every trial); vary [model] and [training] settings, or augment", origin)
    if not isinstance(entry, Mapping) or len(entry) != 1 or next(iter(entry)) not in KINDS:
        raise _fail(key, f"expected a table with one of {', '.join(KINDS)}, e.g. "
                         f"{{choices = [...]}} or {{log_range = [low, high]}}; got {entry!r}", origin)
    kind, values = next(iter(entry.items()))
    check = f.metadata["check"]
    if kind == "choices":
        if not isinstance(values, list) or not values:
            raise _fail(f"{key}.choices", f"expected a non-empty list of values, got {values!r}", origin)
        try:
            checked = tuple(check(v, f"{key}.choices") for v in values)
        except SpecError as exc:
            raise SpecError(f"{origin}: {exc}") from None
        if len({json.dumps(_plain(v), sort_keys=True) for v in checked}) != len(checked):
            raise _fail(f"{key}.choices", f"the values must be distinct, got {values!r}", origin)
        return Param(name, kind, checked)
    annotation = str(f.type)
    if not annotation.startswith(("int", "float")) or annotation.startswith("int | float"):
        raise _fail(f"{key}.{kind}", f"{name} is not a number; give choices = [...]", origin)
    integer = annotation.startswith("int")
    if not isinstance(values, list) or len(values) != 2 or not all(_is_number(v) for v in values):
        raise _fail(f"{key}.{kind}", f"expected [low, high], two numbers, got {values!r}", origin)
    low, high = values
    if integer and not all(isinstance(v, int) for v in values):
        raise _fail(f"{key}.{kind}", f"{name} is a whole number; give whole-number ends, got {values!r}",
                    origin)
    if not low < high:
        raise _fail(f"{key}.{kind}", f"low must be below high, got {values!r}", origin)
    if kind == "log_range" and low <= 0:
        raise _fail(f"{key}.{kind}", f"a log-uniform range needs low > 0, got {values!r}", origin)
    try:
        ends = tuple(check(v, f"{key}.{kind}") for v in values)
    except SpecError as exc:
        raise SpecError(f"{origin}: {exc}") from None
    return Param(name, kind, ends, integer)


def parse_sweep(document: Mapping[str, Any], origin: str = "sweep") -> Sweep:
    """A :class:`Sweep` from a parsed sweep file (a run spec plus ``[sweep]``); every problem
    is a one-line :class:`~digitnet.errors.SpecError` naming the key."""
    base = RunSpec.from_dict(document, origin)
    table = document.get("sweep")
    if table is None:
        raise SpecError(f"{origin}: no [sweep] table; a sweep file is a run spec plus [sweep] with "
                        "[sweep.params] naming the settings to vary")
    if not isinstance(table, Mapping):
        raise SpecError(f"{origin}: [sweep] must be a table, got {table!r}")
    for key in table:
        if key not in SWEEP_KEYS:
            raise SpecError(f"{origin}: [sweep] has no setting {key!r}{_nearest(key, SWEEP_KEYS)}; "
                            f"its settings: {', '.join(SWEEP_KEYS)}")
    search = table.get("search", "random")
    if search not in SEARCHES:
        raise _fail("sweep.search", f"expected one of {', '.join(SEARCHES)}; got {search!r}", origin)
    metric = table.get("metric", "val_accuracy")
    if isinstance(metric, str) and metric.startswith("test"):
        raise _fail("sweep.metric", f"{metric!r} is the test set, which a sweep never optimises; "
                                    f"choose {' or '.join(METRICS)}", origin)
    if metric not in METRICS:
        raise _fail("sweep.metric", f"expected one of {', '.join(METRICS)}; got {metric!r}", origin)
    raw_params = table.get("params")
    if not isinstance(raw_params, Mapping) or not raw_params:
        raise _fail("sweep.params", "name at least one setting to vary, e.g. [sweep.params] "
                                    "lr = {log_range = [1e-4, 1e-2]}", origin)
    params = tuple(_parse_param(name, entry, origin) for name, entry in raw_params.items())
    if search == "grid":
        ranged = [p.name for p in params if p.kind != "choices"]
        if ranged:
            raise _fail(f"sweep.params.{ranged[0]}", "a grid search needs choices = [...] (a range "
                                                     "has no grid points)", origin)
        if "trials" in table:
            raise _fail("sweep.trials", "a grid search runs every combination of the choices "
                                        f"({math.prod(len(p.values) for p in params)} trials); leave "
                                        "trials out", origin)
        trials = math.prod(len(p.values) for p in params)
    else:
        trials = _check_int(table.get("trials", DEFAULT_TRIALS), "sweep.trials", 1, origin)
    parallel = table.get("parallel")
    if parallel is not None:
        parallel = _check_int(parallel, "sweep.parallel", 1, origin)
    early_stop = table.get("early_stop")
    if early_stop is not None and early_stop not in EARLY_STOPS:
        raise _fail("sweep.early_stop", f"expected {' or '.join(map(repr, EARLY_STOPS))} (or leave it "
                                        f"out); got {early_stop!r}", origin)
    for option in ASHA_OPTIONS:
        if option in table and early_stop is None:
            raise _fail(f"sweep.{option}", "is an option of early_stop = 'asha', which is not set", origin)
    if any(p.name in ("seed", "split_seed") for p in params) and base.data.split_seed is None:
        # the validation images must be the same for every trial: pin the split to the base seed
        base = base.replace(split_seed=base.training.seed)
    sweep = Sweep(
        base=base, params=params, search=search, trials=trials, metric=metric, parallel=parallel,
        cpus_per_trial=_check_int(table.get("cpus_per_trial", 1), "sweep.cpus_per_trial", 1, origin),
        seed=_check_int(table.get("seed", 0), "sweep.seed", 0, origin), early_stop=early_stop,
        grace_period=_check_int(table.get("grace_period", 1), "sweep.grace_period", 1, origin),
        reduction_factor=_check_int(table.get("reduction_factor", 3), "sweep.reduction_factor", 2, origin),
        document=_plain(dict(document)))
    check_trials(sweep, origin)
    return sweep


def check_trials(sweep: Sweep, origin: str = "sweep") -> int:
    """Check that the trials the sweep can make are valid runs, before Ray starts: every
    combination of the parameters' extreme values (every choice, both ends of each range) when
    there are at most :data:`MAX_CHECKED` of them, else each value alone and that many
    combinations drawn at random. Returns how many specs were checked."""
    options = [p.extremes() for p in sweep.params]
    if math.prod(len(o) for o in options) <= MAX_CHECKED:
        combos = list(itertools.product(*options))
    else:
        base = [o[0] for o in options]
        combos = [tuple(v if j == i else base[j] for j in range(len(options)))
                  for i, o in enumerate(options) for v in o]
        rng = np.random.default_rng(sweep.seed)
        combos += [tuple(o[rng.integers(len(o))] for o in options) for _ in range(MAX_CHECKED)]
    for combo in combos:
        values = dict(zip((p.name for p in sweep.params), combo, strict=True))
        try:
            dry_build(sweep.spec_for(values))
        except SpecError as exc:
            shown = ", ".join(f"{k} = {format_value(v)}" for k, v in values.items())
            raise SpecError(f"{origin}: sweep.params: the trial with {shown} is not a valid run: "
                            f"{exc}") from None
    return len(combos)


def load_sweep(path: str | Path) -> Sweep:
    """A sweep from a TOML sweep file (or the ``sweep.json`` a sweep wrote: its ``spec``)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read it as text ({exc})") from None
    is_json = path.suffix.lower() == ".json"
    try:
        document = json.loads(text) if is_json else tomllib.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"{path}: not valid {'JSON' if is_json else 'TOML'} ({exc})") from None
    if is_json and isinstance(document, dict) and "spec" in document:
        document = document["spec"]
    if not isinstance(document, dict):
        raise SpecError(f"{path}: expected a table of [data], [model], [training] and [sweep]")
    return parse_sweep(document, str(path))


# --------------------------------------------------------------------------- one trial (on a worker)
def _scores(history: History, i: int) -> dict[str, float]:
    return {"val_accuracy": history.val_accuracy[i], "val_loss": history.val_loss[i],
            "train_accuracy": history.train_accuracy[i], "loss": history.loss[i]}


def _saved_epoch(spec: RunSpec, history: History) -> int:
    """The index of the epoch whose weights the run saved (the best one with early stopping)."""
    if spec.training.early_stopping and history.best_epoch:
        return history.best_epoch - 1
    return len(history.epoch) - 1


def _quiet(message: str) -> None:
    """Trials log nothing: the sweep prints one progress line for all of them."""


def run_trial(config: dict[str, Any], *, data: PreparedData, base: dict[str, Any], params: tuple[Param, ...],
              out: str) -> None:
    """Ray Tune's trainable: train one trial into ``out/trials/<trial id>`` as an ordinary run,
    reporting each epoch's validation scores (for ASHA) and, at the end, the scores of the
    model the run saved. ``data`` comes from Ray's object store: its arrays are read in place.

    A trial restarted after an interrupted sweep continues from its run's checkpoint; one whose
    run had finished reports it again without training."""
    from ray import tune

    values = {p.name: p.value(config[p.name]) for p in params}
    spec = RunSpec.from_dict(base, "sweep").replace(**values)
    trial_id = tune.get_context().get_trial_id()
    dest = Path(out) / TRIALS_DIR / trial_id
    shared = not data.x_train.flags.writeable  # read-only: a view of the object store's memory
    if is_run_dir(dest):
        history = History.from_dict(load_run(dest, model=False).metrics["history"])
    else:
        def on_epoch_end(epoch: int, history: History, _clf: Any) -> None:
            if epoch < spec.training.epochs:  # the last epoch is reported once the run is saved
                tune.report({"epoch": epoch, **_scores(history, epoch - 1),
                             "train_seconds": history.train_seconds, "data_in_object_store": shared})

        def sweep_metrics(_clf: Any, _data: PreparedData, _history: History) -> dict[str, Any]:
            return {"sweep": {"dir": out, "trial": trial_id, "params": _plain(values),
                              "data_in_object_store": shared}}

        history = run_training(spec, out=dest, data=data, resume=partial_path(dest).is_dir(),
                               progress=False, log=_quiet, on_epoch_end=on_epoch_end,
                               extra_metrics=sweep_metrics).history
    tune.report({"epoch": len(history.epoch), **_scores(history, _saved_epoch(spec, history)),
                 "train_seconds": history.train_seconds, "data_in_object_store": shared, "finished": True})


def trial_dirname(trial: Any) -> str:
    """Ray's own directory of a trial: its id (the default name repeats every parameter)."""
    return str(trial.trial_id)


# --------------------------------------------------------------------------- the progress line
class Progress:
    """A Ray Tune callback printing one line whenever the count of trials done, running or
    pending changes (in place on a terminal), with the best score so far."""

    def __init__(self, total: int, metric: str, mode: str) -> None:
        self.total, self.metric, self.mode = total, metric, mode
        self.last = ""

    def line(self, trials: Sequence[Any]) -> str:
        status = [t.status for t in trials]
        done, failed = status.count("TERMINATED"), status.count("ERROR")
        running = status.count("RUNNING")
        pending = max(self.total - done - failed - running, 0)
        best, top = "", None
        for t in trials:
            score = t.last_result.get(self.metric)
            if t.status == "TERMINATED" and t.last_result.get("finished") and _is_number(score) and (
                    top is None or (score > top if self.mode == "max" else score < top)):
                top, best = score, f"; best {self.metric} {score:.4f} ({t.trial_id})"
        errors = f", {failed} failed" if failed else ""
        return f"sweep: {done}/{self.total} done, {running} running, {pending} pending{errors}{best}"

    def on_step_end(self, iteration: int, trials: Sequence[Any], **info: Any) -> None:
        line = self.line(trials)
        if line != self.last:
            self.last = line
            if sys.stderr.isatty():
                print(f"\r{line}\x1b[K", end="", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.last and sys.stderr.isatty():
            print(file=sys.stderr, flush=True)


def _progress_callback(total: int, metric: str, mode: str) -> Any:
    """A :class:`Progress` that is also a ``ray.tune.Callback`` (Ray is imported only here)."""
    from ray import tune

    class ProgressCallback(Progress, tune.Callback):
        pass

    return ProgressCallback(total, metric, mode)


# --------------------------------------------------------------------------- Ray
def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_ray(address: str | None, *, num_cpus: int | None = None, node_ip_address: str | None = None) -> Any:
    """Start a local Ray runtime (``address`` None) or join the cluster at ``address``.

    A local runtime, or a cluster on a loopback address, keeps every Ray process on
    127.0.0.1: Ray would otherwise advertise the machine's outward address. The dashboard and
    usage statistics are off. Returns the ``ray`` module."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/TensorBoard files
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    local = address is None or (address != "auto" and _is_loopback(address))
    if local:
        # Ray keeps its node address on loopback only when it thinks clusters are off
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if address is None:
        # Ray runs its workers at niceness 15; a trial should get the CPU that `digitnet train` gets
        os.environ.setdefault("RAY_worker_niceness", "0")
        node_ip_address = node_ip_address or "127.0.0.1"
    try:
        import ray
        from ray import tune  # noqa: F401  (Ray Tune's dependencies: a clear error if missing)
    except ImportError as exc:
        raise SweepError(f"digitnet sweep needs Ray Tune ({exc}); install it with "
                         "pip install -e \".[sweep]\"") from None
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if node_ip_address:
        kwargs["_node_ip_address"] = node_ip_address
    if address is None:
        kwargs.update(address="local", num_cpus=num_cpus, include_dashboard=False)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray runtime" if address is None else f"join the Ray cluster at {address}"
        raise SweepError(f"cannot {where}: {' '.join(str(exc).split())}") from None
    for name in ("ray", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # trial errors are reported in one line here
    return ray


# --------------------------------------------------------------------------- results
@dataclass
class TrialRow:
    """One trial as the sweep records it. ``status``: ``done`` (a finished run directory),
    ``stopped`` (ASHA stopped it early; its run is left unfinished, resumable with ``digitnet
    train --resume``), ``error`` (with ``error``), or ``pending``/``running`` when the sweep
    was interrupted."""

    trial: str
    params: dict[str, Any]
    status: str
    score: float | None = None
    epochs: int = 0
    seconds: float | None = None
    run_dir: str | None = None
    error: str | None = None

    def to_dict(self, metric: str) -> dict[str, Any]:
        return {"trial": self.trial, "params": _plain(self.params), metric: self.score,
                "epochs": self.epochs, "seconds": self.seconds, "status": self.status,
                "run_dir": self.run_dir, "error": self.error}


@dataclass
class SweepResult:
    """A sweep's outcome: every trial, the best finished one, and where the files are."""

    sweep: Sweep
    out: Path
    rows: list[TrialRow]
    best: TrialRow | None
    best_test_accuracy: float | None
    wall_seconds: float
    finished: bool
    page: Path | None = None
    notes: list[str] = field(default_factory=list)


_STATUS = {"TERMINATED": "done", "ERROR": "error", "RUNNING": "running", "PENDING": "pending",
           "PAUSED": "pending"}


def _error_line(trial: Any) -> str:
    """The one-line cause of a failed trial (``TrainingDiverged: training diverged in epoch
    1 ...``), from the error Ray stored with the trial."""
    try:
        error = trial.get_pickled_error()
    except Exception:  # an exception class that cannot be unpickled here: use the text below
        error = None
    cause = getattr(error, "cause", None) or error
    if isinstance(cause, BaseException) and not type(cause).__name__.startswith("RayTaskError"):
        return " ".join(f"{type(cause).__name__}: {cause}".split())
    text = trial.get_error() or ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "failed (Ray recorded no error message)"


def collect_rows(sweep: Sweep, out: Path, trials: Sequence[Any]) -> list[TrialRow]:
    """A :class:`TrialRow` for each of Ray's trials (from its last report and our run
    directory)."""
    rows = []
    for t in sorted(trials, key=lambda t: t.trial_id):
        config = t.config or {}
        params = {p.name: p.value(config[p.name]) for p in sweep.params if p.name in config}
        result = t.last_result or {}
        status = _STATUS.get(t.status, t.status.lower())
        dest = out / TRIALS_DIR / t.trial_id
        if status == "done" and not result.get("finished"):
            status = "stopped"
        score = result.get(sweep.metric)
        row = TrialRow(trial=t.trial_id, params=params, status=status,
                       score=float(score) if _is_number(score) else None,
                       epochs=int(result.get("epoch", 0) or 0),
                       seconds=float(result["train_seconds"]) if "train_seconds" in result else None,
                       run_dir=str(dest) if is_run_dir(dest) else
                       (str(partial_path(dest)) if partial_path(dest).is_dir() else None))
        if status == "error":
            row.error = _error_line(t)
        rows.append(row)
    return rows


def ranked(rows: Sequence[TrialRow], sweep: Sweep) -> list[TrialRow]:
    """Rows best first: scored trials by the metric, then the others in trial order."""
    scored = sorted((r for r in rows if r.score is not None),
                    key=lambda r: -r.score if sweep.mode == "max" else r.score)  # type: ignore[operator]
    return scored + sorted((r for r in rows if r.score is None), key=lambda r: r.trial)


def format_value(value: Any) -> str:
    """A parameter's value for a table: lists joined with commas, numbers to 4 digits."""
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[TrialRow], sweep: Sweep) -> str:
    """The plain-text table printed at the end: one row per trial, best first."""
    columns = ["trial", *(p.name for p in sweep.params), sweep.metric, "epochs", "seconds", "status"]
    cells = []
    for r in ranked(rows, sweep):
        cells.append([r.trial, *(format_value(r.params.get(p.name, "")) for p in sweep.params),
                      "n/a" if r.score is None else f"{r.score:.4f}", str(r.epochs),
                      "n/a" if r.seconds is None else f"{r.seconds:.1f}", r.status])
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------- the sweep directory
def read_state(out: Path) -> dict[str, Any]:
    """``out/sweep.json`` as written by an earlier invocation."""
    path = out / SWEEP_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{out}: not a sweep directory (no {SWEEP_FILE})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SweepError(f"{path}: unreadable ({exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("spec"), dict):
        raise SweepError(f"{path}: not a sweep record (no 'spec' table)")
    return state


def _prepare_out(out: Path, *, resume: bool, overwrite: bool) -> None:
    if resume:
        state = read_state(out)
        if state.get("status") == "finished":
            raise SweepError(f"{out} is a finished sweep; there is nothing to resume")
        return
    if out.exists():
        if not out.is_dir():
            raise SweepError(f"{out} exists and is not a directory")
        if (out / SWEEP_FILE).is_file():
            if not overwrite:
                state = read_state(out)
                hint = "" if state.get("status") == "finished" else \
                    f", resume it with `digitnet sweep --resume {out}`"
                raise SweepError(f"{out} already holds a sweep; choose another --out{hint}, or pass "
                                 "--overwrite to replace it")
            shutil.rmtree(out)
        elif any(out.iterdir()):
            raise SweepError(f"{out} is not empty and holds no sweep; refusing to write into it")
    out.mkdir(parents=True, exist_ok=True)


def _write_state(out: Path, sweep: Sweep, status: str, extra: Mapping[str, Any] | None = None) -> None:
    state = {"status": status, "spec": sweep.document, "search": sweep.search, "metric": sweep.metric,
             "mode": sweep.mode, "trials_planned": sweep.trials,
             "params": {p.name: p.to_dict() for p in sweep.params}, **(extra or {})}
    write_json(out / SWEEP_FILE, state)


# --------------------------------------------------------------------------- running a sweep
def data_record(data: PreparedData, data_dir: str | Path | None) -> dict[str, Any]:
    """What ``sweep.json`` keeps of the data: where they came from, their sizes, and a
    fingerprint (a hash of the labels and of every k-th image), so that a resumed sweep trains
    its remaining trials on the same images."""
    step = max(1, len(data.x_train) // 1000)
    digest = hashlib.sha256(np.ascontiguousarray(data.y_train).tobytes())
    digest.update(np.ascontiguousarray(data.x_train[::step]).tobytes())
    return {"data_dir": None if data_dir is None else str(Path(data_dir).resolve()),
            "n_train": len(data.x_train), "n_valid": len(data.x_valid), "n_test": len(data.x_test),
            "classes": list(data.classes), "fingerprint": digest.hexdigest()[:16]}


def run_sweep(sweep: Sweep, out: str | Path | None = None, *, address: str | None = None,
              node_ip_address: str | None = None, num_cpus: int | None = None,
              data_dir: str | Path | None = None, resume: bool = False, overwrite: bool = False,
              log: Log = print, data: PreparedData | None = None) -> SweepResult:
    """Run ``sweep`` on Ray Tune and write ``out`` (default ``sweeps/<timestamp>``).

    ``address`` None starts a local Ray runtime on ``num_cpus`` cores (default: all of them)
    and stops it at the end; otherwise the sweep joins that cluster (``"auto"``: the one
    started on this machine). ``resume`` continues the unfinished sweep in ``out`` (on the data
    directory it started with, unless ``data_dir`` is given; other data are refused).
    ``data`` skips loading (already prepared for ``sweep.base``)."""
    out = Path(out) if out is not None else new_run_dir("sweeps")
    _prepare_out(out, resume=resume, overwrite=overwrite)
    before = read_state(out) if resume else {}
    recorded = before.get("data")
    if resume and data_dir is None and isinstance(recorded, dict):
        data_dir = recorded.get("data_dir")
    if data is None:
        data = load_data(sweep.base, data_dir, log=log)
    if len(data.x_valid) == 0:
        raise _fail("data.valid_size", "a sweep chooses by validation scores, and this spec holds out no "
                                       "validation images; set valid_size (e.g. 5000)")
    record = data_record(data, data_dir)
    if isinstance(recorded, dict) and recorded.get("fingerprint") != record["fingerprint"]:
        was = recorded.get("data_dir") or "the default MNIST"
        raise SweepError(f"{out}: these are not the images the sweep started with ({record['n_train']:,} "
                         f"training images from {data_dir or 'the default MNIST'}; it had "
                         f"{recorded.get('n_train', 0):,} from {was}); pass --data DIR as when it started")
    if not resume:
        _write_state(out, sweep, "running", {"data": record})
    t0 = time.perf_counter()
    cpus = num_cpus or os.cpu_count() or 1
    ray = start_ray(address, num_cpus=cpus if address is None else None, node_ip_address=node_ip_address)
    try:
        trials, finished = _tune(sweep, out, data, resume=resume, log=log)
    finally:
        ray.shutdown()
    wall = time.perf_counter() - t0
    earlier = before.get("wall_seconds")
    return _finish(sweep, out, trials, finished, wall + (earlier if _is_number(earlier) else 0.0), record)


def _tune(sweep: Sweep, out: Path, data: PreparedData, *, resume: bool, log: Log) -> tuple[list[Any], bool]:
    """Run (or restore and continue) the Ray Tune experiment; returns Ray's trials and whether
    every trial ended."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=data, base=sweep.base.to_dict(), params=sweep.params,
                             out=str(out.resolve())),
        {"cpu": sweep.cpus_per_trial})
    path = out.resolve() / RAY_DIR
    if resume and tune.Tuner.can_restore(str(path)):
        log(f"resuming the sweep in {out}")
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        grid = sweep.search == "grid"
        if sweep.search == "tpe":
            from ray.tune.search.optuna import OptunaSearch

            search_alg: Any = OptunaSearch(metric=sweep.metric, mode=sweep.mode, seed=sweep.seed)
        else:
            search_alg = BasicVariantGenerator(random_state=sweep.seed)
        scheduler = None
        if sweep.early_stop == "asha":
            scheduler = ASHAScheduler(time_attr="epoch", max_t=sweep.max_epochs,
                                      grace_period=sweep.grace_period,
                                      reduction_factor=sweep.reduction_factor)
        parallel = sweep.parallel
        tuner = tune.Tuner(
            trainable, param_space={p.name: p.domain(grid) for p in sweep.params},
            tune_config=tune.TuneConfig(metric=sweep.metric, mode=sweep.mode, search_alg=search_alg,
                                        scheduler=scheduler, num_samples=1 if grid else sweep.trials,
                                        max_concurrent_trials=parallel, reuse_actors=True,
                                        trial_dirname_creator=trial_dirname),
            run_config=tune.RunConfig(name=RAY_DIR, storage_path=str(out.resolve()), verbose=0,
                                      callbacks=[_progress_callback(sweep.trials, sweep.metric, sweep.mode)],
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)))
    tuner.fit()
    trials = list(tune.ExperimentAnalysis(str(path)).trials)
    finished = len(trials) >= sweep.trials and all(t.status in ("TERMINATED", "ERROR") for t in trials)
    return trials, finished


def _finish(sweep: Sweep, out: Path, trials: Sequence[Any], finished: bool, wall: float,
            data: dict[str, Any]) -> SweepResult:
    """Write ``sweep.json``, the best trial's ``best_config.json`` and ``sweep.html``; ``wall``
    is the time of every invocation of this sweep together."""
    rows = collect_rows(sweep, out, trials)
    done = [r for r in rows if r.status == "done" and r.score is not None and r.run_dir]
    best = None
    for r in done:
        if best is None or sweep.better(r.score, best.score):  # type: ignore[arg-type]
            best = r
    notes, test_accuracy, extra = [], None, {}
    if best is not None:
        run = load_run(Path(best.run_dir), model=False)  # type: ignore[arg-type]
        test_accuracy = run.metrics.get("test_accuracy")
        write_json(out / BEST_CONFIG, run.config)
        extra["best"] = {**best.to_dict(sweep.metric), "test_accuracy": test_accuracy,
                         "config": str(out / BEST_CONFIG)}
    extra.update(data=data, wall_seconds=wall, trials=[r.to_dict(sweep.metric) for r in ranked(rows, sweep)])
    status = "finished" if finished else "interrupted"
    _write_state(out, sweep, status, extra)
    page = None
    try:
        from .report.sweep import write_sweep_page
    except ImportError as exc:  # the plots extra is not installed
        notes.append(f"no {PAGE}: it needs plotly and matplotlib (pip install -e \".[plots]\"): {exc}")
    else:
        page = write_sweep_page(out / PAGE, sweep_page_data(sweep, rows, best, test_accuracy, wall, out))
    return SweepResult(sweep, out, rows, best, test_accuracy, wall, finished, page, notes)


def sweep_page_data(sweep: Sweep, rows: Sequence[TrialRow], best: TrialRow | None,
                    test_accuracy: float | None, wall: float, out: Path) -> dict[str, Any]:
    """What the page shows, as plain data (the page module knows nothing of sweeps)."""
    return {
        "title": f"digitnet sweep: {out.name}",
        "subtitle": f"{out} · {sweep.search} search · {len(rows)} trials · {wall:.0f} s",
        "metric": sweep.metric, "mode": sweep.mode,
        "params": [{"name": p.name, "kind": p.kind, "values": [format_value(v) for v in p.values]
                    if p.kind == "choices" else list(p.values), "describe": p.describe()}
                   for p in sweep.params],
        "trials": [{"trial": r.trial, "params": {k: (format_value(v) if p.kind == "choices" else v)
                                                  for p in sweep.params
                                                  for k, v in r.params.items() if k == p.name},
                    "score": r.score, "epochs": r.epochs, "seconds": r.seconds, "status": r.status,
                    "error": r.error} for r in ranked(rows, sweep)],
        "best": None if best is None else {"trial": best.trial, "score": best.score,
                                           "test_accuracy": test_accuracy,
                                           "config": str(out / BEST_CONFIG)},
    }

