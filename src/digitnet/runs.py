"""Run directories: written whole or not at all, and read back with every file checked.

A finished run directory holds ``config.json`` (the run spec, which ``digitnet train
--config`` replays), ``model.npz`` (the trained classifier) and ``metrics.json`` (test
accuracy, timing, the per-epoch history, per-class scores, where the data came from).

While it trains, a run lives beside its destination in ``<dest>.partial/``, marked by an
``INCOMPLETE`` file that says how to resume it; every epoch writes ``checkpoint.npz`` there.
Only a complete run is renamed into place, so ``runs/x`` is either a whole run or absent,
and an existing run is replaced only when asked (``--overwrite``), as a whole: no old
report is left next to a new model.
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import notebook
from .atomic import write_bytes, write_error
from .classifier import Classifier
from .errors import DigitnetError
from .spec import RunSpec
from .train import History

PARTIAL_SUFFIX = ".partial"
MARKER = "INCOMPLETE"
CHECKPOINT = "checkpoint.npz"
RUN_FILES = ("config.json", "model.npz", "metrics.json")
HISTORY_KEYS = ("loss", "train_accuracy", "val_loss", "val_accuracy")
WHAT_A_RUN_HOLDS = "a run directory written by `digitnet train` holds model.npz, config.json and metrics.json"


class RunError(DigitnetError, ValueError):
    """A run directory is missing, unfinished, malformed, or in the way."""


def partial_path(dest: str | Path) -> Path:
    """Where the run bound for ``dest`` lives until it is complete: ``<dest>.partial``."""
    dest = Path(dest)
    return dest.with_name(dest.name + PARTIAL_SUFFIX)


def new_run_dir(base: str | Path = "runs", label: str = "") -> Path:
    """``runs/<timestamp>[-label]``, made unique if two runs start in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S") + (f"-{label}" if label else "")
    path, n = Path(base) / stamp, 1
    while path.exists() or partial_path(path).exists():
        n += 1
        path = Path(base) / f"{stamp}-{n}"
    return path


def is_incomplete(path: str | Path) -> bool:
    """Whether ``path`` is an unfinished run (a ``.partial`` directory or one with the marker)."""
    path = Path(path)
    return path.is_dir() and (path.name.endswith(PARTIAL_SUFFIX) or (path / MARKER).exists())


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a complete run directory."""
    path = Path(path)
    return path.is_dir() and not is_incomplete(path) and all((path / f).is_file() for f in RUN_FILES)


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    return write_bytes(path, (json.dumps(data, indent=2, allow_nan=True) + "\n").encode())


# --------------------------------------------------------------------------- writing
@dataclass
class PartialRun:
    """A run being written: files go into ``path`` (``<dest>.partial``) until :meth:`finish`."""

    dest: Path
    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    def resume_command(self) -> str:
        return f"digitnet train --resume {self.dest}"

    def finish(self, *, overwrite: bool = False) -> Path:
        """Drop the checkpoint and the marker and move the run into place (replacing an old
        run at ``dest`` only with ``overwrite``). Returns ``dest``."""
        try:
            self.checkpoint.unlink(missing_ok=True)
            (self.path / MARKER).unlink(missing_ok=True)
            if self.dest.exists():
                _check_replaceable(self.dest, overwrite)
                old = self.dest.with_name(f".{self.dest.name}.replaced-{secrets.token_hex(4)}")
                self.dest.rename(old)
                self.path.rename(self.dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                self.path.rename(self.dest)
        except OSError as exc:
            raise write_error(self.dest, exc) from exc
        return self.dest


def _check_replaceable(dest: Path, overwrite: bool) -> None:
    if not overwrite:
        raise RunError(f"{dest} already exists; choose another --out, or pass --overwrite to replace it")
    if not dest.is_dir():
        raise RunError(f"{dest} exists and is not a directory; refusing to replace it")
    if any(dest.iterdir()) and not (dest / "config.json").is_file():
        raise RunError(f"{dest} is not a run directory (no config.json); refusing to replace what it holds")


def start_run(dest: str | Path, *, overwrite: bool = False, resume: bool = False) -> PartialRun:
    """Prepare ``<dest>.partial`` for a new run (or find it, with ``resume``).

    Refuses, with what to do instead: an existing ``dest`` without ``overwrite``; an
    unfinished run at ``<dest>.partial`` without ``resume`` or ``overwrite``; ``resume`` with
    nothing to resume."""
    dest = Path(dest)
    partial = partial_path(dest)
    if dest.name.endswith(PARTIAL_SUFFIX):
        raise RunError(f"{dest}: give the run's destination, not its {PARTIAL_SUFFIX} directory "
                       f"(e.g. {dest.with_name(dest.name[: -len(PARTIAL_SUFFIX)])})")
    if resume:
        if partial.is_dir():
            return PartialRun(dest, partial)
        if is_run_dir(dest):
            raise RunError(f"{dest} is a finished run; there is nothing to resume")
        raise RunError(f"there is no unfinished run to resume at {partial}")
    if dest.exists():
        _check_replaceable(dest, overwrite)
    if partial.exists():
        if not overwrite:
            raise RunError(f"{partial} holds an unfinished run: resume it with `digitnet train --resume "
                           f"{dest}`, or pass --overwrite to start again")
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as exc:
        raise write_error(partial, exc) from exc
    note = f"This run did not finish. Continue it with:\n  digitnet train --resume {dest}\n" \
           "or delete this directory.\n"
    write_bytes(partial / MARKER, note.encode())
    return PartialRun(dest, partial)


# --------------------------------------------------------------------------- reading
def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; a missing, unreadable or non-object file is a RunError."""
    if not path.is_file():
        raise RunError(f"{path}: no such file; {WHAT_A_RUN_HOLDS}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RunError(f"{path}: not a text file (expected JSON)") from None
    except RecursionError:
        raise RunError(f"{path}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, "
                       f"column {exc.colno}); re-run `digitnet train` to write it again") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_metrics(metrics: Mapping[str, Any], source: str | Path = "metrics.json") -> dict[str, Any]:
    """Check the parts of ``metrics.json`` that reports and comparisons use; return it as a dict.

    Needs ``test_accuracy`` (a number in [0, 1], or null when the data had no test split),
    ``epochs`` (a positive integer) and ``history`` with equally long lists of numbers
    ``loss``, ``train_accuracy``, ``val_loss``, ``val_accuracy`` (NaN where there was no
    validation set).
    """
    def bad(problem: str) -> RunError:
        return RunError(f"{source}: malformed metrics: {problem}")

    if not isinstance(metrics, Mapping):
        raise bad(f"expected a JSON object, found {type(metrics).__name__}")
    if "test_accuracy" not in metrics:
        raise bad("'test_accuracy' is missing")
    acc = metrics["test_accuracy"]
    if acc is not None and (not _is_number(acc) or not 0.0 <= acc <= 1.0):
        raise bad(f"'test_accuracy' must be a number between 0 and 1 (or null), got {acc!r}")
    epochs = metrics.get("epochs")
    if epochs is None:
        raise bad("'epochs' is missing")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise bad(f"'epochs' must be a positive integer, got {epochs!r}")
    history = metrics.get("history")
    if history is None:
        raise bad("'history' (the per-epoch record) is missing")
    if not isinstance(history, Mapping):
        raise bad(f"'history' must be an object of per-epoch lists, got {type(history).__name__}")
    length = None
    for key in (*HISTORY_KEYS, "epoch"):
        values = history.get(key)
        if values is None and key == "epoch":
            continue
        if values is None:
            raise bad(f"'history.{key}' is missing")
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise bad(f"'history.{key}' must be a list of numbers")
        if length is None:
            length = len(values)
            if length == 0:
                raise bad(f"'history.{key}' is empty: the run recorded no epoch")
        elif len(values) != length:
            raise bad(f"'history.{key}' has {len(values)} values but 'history.loss' has {length}")
    best = history.get("best_epoch")
    if best is not None and (not isinstance(best, int) or isinstance(best, bool) or not 1 <= best <= length):
        raise bad(f"'history.best_epoch' must be an epoch number 1-{length} or null, got {best!r}")
    for key in ("train_seconds", "wall_seconds"):
        if key in metrics and not (_is_number(metrics[key]) and math.isfinite(metrics[key])):
            raise bad(f"'{key}' must be a number, got {metrics[key]!r}")
    return dict(metrics)


@dataclass
class Run:
    """A finished run directory: its spec (``config.json``), recorded metrics, and (when
    asked for) the trained classifier."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    classifier: Classifier | None = None

    @property
    def name(self) -> str:
        return self.path.resolve().name or str(self.path)

    @property
    def spec(self) -> RunSpec:
        """The run's spec, parsed from ``config.json``."""
        return RunSpec.from_dict(self.config, str(self.path / "config.json"))

    @property
    def history(self) -> History | None:
        """The per-epoch record from ``metrics.json`` (None if it has keys a History lacks)."""
        try:
            return History.from_dict(dict(self.metrics["history"]))
        except (TypeError, KeyError):
            return None

    def facts(self) -> list[tuple[str, str]]:
        """``(what, value)`` pairs: where the run is and how it ended."""
        m = self.metrics
        out = [("run", str(self.path)), ("epochs", str(m["epochs"]))]
        if m.get("test_accuracy") is not None:
            out.append(("test accuracy", f"{m['test_accuracy']:.4f}"))
        if _is_number(m.get("train_seconds")):
            out.append(("training seconds", f"{m['train_seconds']:.1f}"))
        return out

    def settings(self) -> list[tuple[str, Any]]:
        """The run spec's settings as ``("table.name", value)`` rows, from ``config.json``."""
        return [(f"{table}.{key}", value) for table, values in self.config.items()
                if isinstance(values, Mapping) for key, value in values.items()]

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, {', '.join(f'{k} {v}' for k, v in self.facts()[1:])})"

    def _repr_html_(self) -> str:
        parts = [notebook.table(self.facts()), notebook.table(self.settings(), ("setting", "value"))]
        history = self.history
        if history is not None:
            parts.append(history._repr_html_())
        if self.classifier is not None:
            parts.append(self.classifier._repr_html_())
        return notebook.section(f"digitnet run {self.name}", *parts)


def load_run(run_dir: str | Path, *, model: bool = True) -> Run:
    """Read and validate ``config.json``, ``metrics.json`` and (with ``model``) ``model.npz``."""
    path = Path(run_dir)
    if not path.exists():
        partial = partial_path(path)
        if partial.is_dir():
            raise RunError(f"{path} has not finished: its unfinished run is in {partial}; "
                           f"resume it with `digitnet train --resume {path}`")
        raise RunError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunError(f"{path}: not a directory; {WHAT_A_RUN_HOLDS}")
    if is_incomplete(path):
        dest = path.with_name(path.name.removesuffix(PARTIAL_SUFFIX))
        raise RunError(f"{path} is an unfinished run; resume it with `digitnet train --resume {dest}`")
    metrics_path = path / "metrics.json"
    metrics = validate_metrics(read_json_object(metrics_path), metrics_path)
    config = read_json_object(path / "config.json")
    clf = Classifier.load(path / "model.npz") if model else None
    return Run(path, config, metrics, clf)
