"""A training run, end to end: the one runner behind ``digitnet train`` and ``digitnet reproduce``.

:func:`run_training` takes a :class:`~digitnet.spec.RunSpec`, checks it (before any data is
loaded), reads the dataset in the spec's format, prepares it, trains, evaluates on the test
split and writes a run directory (see :mod:`digitnet.runs`): ``config.json`` (the spec,
replayable with ``digitnet train --config``), ``model.npz`` and ``metrics.json``. The run
lives in ``<out>.partial`` with a checkpoint after every epoch until it is complete.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .classifier import Classifier, evaluate_split, train_classifier
from .data.catalog import read_format
from .metrics import classification_report
from .prepare import PreparedData, prepare
from .runs import PartialRun, new_run_dir, start_run, write_json
from .spec import RunSpec, dry_build
from .train import History, TrainingInterrupted

Log = Callable[[str], None]


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run; its checkpoint is saved and ``resume_command`` continues it."""

    def __init__(self, run: PartialRun, where: str) -> None:
        super().__init__(f"interrupted {where}; the checkpoint is in {run.path}")
        self.run, self.resume_command = run, run.resume_command()


@dataclass
class RunResult:
    """A finished run: where it is, the trained classifier, and what ``metrics.json`` holds."""

    run_dir: Path
    classifier: Classifier
    history: History
    data: PreparedData
    metrics: dict[str, Any] = field(default_factory=dict)


def load_data(spec: RunSpec, data_dir: str | Path | None = None, *, fetch: bool = True,
              log: Log = print) -> PreparedData:
    """The dataset of ``spec.data`` read, split, digit-selected and ready to scale."""
    raw = read_format(spec.data.format, data_dir, dataset=spec.data.dataset, fetch=fetch, log=log)
    source = {**raw.source, "note": raw.note, "data_dir": str(data_dir) if data_dir else None}
    return prepare(spec.data, raw.parts, seed=spec.training.seed, source=source)


def test_report(clf: Classifier, data: PreparedData) -> dict[str, Any] | None:
    """Accuracy, confusion matrix and per-class scores on the prepared test split (None if empty)."""
    if len(data.x_test) == 0:
        return None
    predicted = evaluate_split(clf, data.x_test, data.y_test, data.eval_scale)
    return classification_report(data.y_test, predicted, num_classes=len(data.classes),
                                  class_names=data.class_names)


def run_training(spec: RunSpec, *, out: str | Path | None = None, data_dir: str | Path | None = None,
                 fetch: bool = True, overwrite: bool = False, resume: bool = False, checkpoint: bool = True,
                 progress: bool | None = None, log: Log = print, data: PreparedData | None = None,
                 on_epoch_end: Callable[[int, History, Classifier], None] | None = None,
                 extra_metrics: Callable[[Classifier, PreparedData, History], dict[str, Any]] | None = None
                 ) -> RunResult:
    """Train per ``spec`` and write the run directory ``out`` (default ``runs/<timestamp>``).

    ``resume`` continues the unfinished run bound for ``out`` from its checkpoint (to the
    same weights as an uninterrupted run); ``overwrite`` replaces a finished run at ``out``
    (whole) or an unfinished one. ``data`` skips loading (already prepared for this spec);
    ``extra_metrics`` adds entries to ``metrics.json``.

    Raises :class:`~digitnet.errors.SpecError` for a bad spec before any data is loaded, and
    :class:`RunInterrupted` on Ctrl-C after saving the checkpoint.
    """
    dry_build(spec)
    dest = Path(out) if out is not None else new_run_dir()
    run = start_run(dest, overwrite=overwrite, resume=resume)
    if not resume:
        write_json(run.path / "config.json", spec.to_dict())
    if data is None:
        data = load_data(spec, data_dir, fetch=fetch, log=log)
    log(f"training on {len(data.x_train):,} images ({data.source.get('note', '')}); validating on "
        f"{len(data.x_valid):,}; testing on {len(data.x_test):,}; run directory {run.path}")
    t0 = time.perf_counter()
    try:
        clf, history = train_classifier(spec, data, checkpoint=run.checkpoint if checkpoint else None,
                                        resume=resume, progress=progress, log=log, on_epoch_end=on_epoch_end)
    except TrainingInterrupted as exc:
        where = f"in epoch {exc.epoch} after step {exc.step}" if exc.step else f"before epoch {exc.epoch}"
        raise RunInterrupted(run, where) from None
    wall = time.perf_counter() - t0
    report = test_report(clf, data)
    metrics = {
        "test_accuracy": None if report is None else report["accuracy"],
        "train_seconds": history.train_seconds,
        "wall_seconds": wall,
        "epochs": len(history.epoch),
        "best_epoch": history.best_epoch,
        "dataset": {**data.source, "n_train_used": len(data.x_train), "n_valid": len(data.x_valid),
                    "n_test_used": len(data.x_test), "classes": data.classes,
                    "class_names": data.class_names},
        "history": history.to_dict(),
        "test": report,
        "model": {"parameters": clf.model.num_parameters,
                  "layers": [layer.brief() for layer in clf.model.layers]},
        "environment": {"digitnet": __version__, "numpy": np.__version__,
                        "python": platform.python_version(), "machine": platform.machine()},
    }
    if extra_metrics is not None:
        metrics.update(extra_metrics(clf, data, history))
    clf.metadata.update({"metrics": {k: metrics[k] for k in ("test_accuracy", "train_seconds", "epochs")},
                         "dataset": metrics["dataset"]})
    clf.save(run.path / "model.npz")
    write_json(run.path / "metrics.json", metrics)
    run_dir = run.finish(overwrite=overwrite)
    return RunResult(run_dir, clf, history, data, metrics)
