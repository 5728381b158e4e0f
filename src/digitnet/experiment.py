"""A training run on MNIST, end to end: load data, split, train, evaluate, write a run directory.

The run directory holds ``model.npz``, ``config.json`` (the settings) and
``metrics.json`` (test accuracy, timing, dataset provenance, per-epoch history,
per-class scores). ``digitnet train`` is a thin wrapper around :func:`run_training`.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .atomic import write_bytes
from .classifier import Classifier, MLPClassifier
from .data.datasets import Dataset, load_mnist, select_digits, train_valid_split
from .metrics import classification_report


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``).

    The defaults are the default recipe: 784-256-10 ReLU, He initialisation, Adam
    (lr 0.002) with a cosine schedule, batch 128, 10 epochs. It reaches about 98.2%
    test accuracy in about 10 s of training on a 2-core machine.
    """

    hidden: tuple[int, ...] = (256,)
    activation: str = "relu"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float | None = None
    weight_decay: float = 0.0
    schedule: str | None = "cosine"
    batch_size: int = 128
    epochs: int = 10
    dropout: float = 0.0
    normalization: str = "unit"
    valid_size: int = 5000
    seed: int = 0
    early_stopping: int | None = None
    digits: tuple[int, ...] | None = None

    def estimator(self, verbose: bool) -> MLPClassifier:
        return MLPClassifier(
            self.hidden, activation=self.activation, loss=self.loss, optimizer=self.optimizer,
            learning_rate=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
            schedule=self.schedule, batch_size=self.batch_size, epochs=self.epochs,
            dropout=self.dropout, normalization=self.normalization,
            early_stopping=self.early_stopping, random_state=self.seed, verbose=verbose)


@dataclass
class RunResult:
    run_dir: Path
    classifier: Classifier
    metrics: dict[str, Any] = field(default_factory=dict)


def new_run_dir(base: str | Path = "runs") -> Path:
    """``runs/<timestamp>``, made unique if two runs start in the same second."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(base) / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(base) / f"{stamp}-{n}"
    return path


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    write_bytes(path, (json.dumps(data, indent=2, allow_nan=True) + "\n").encode())


def prepare_data(config: TrainConfig, dataset: Dataset) -> tuple[np.ndarray, ...]:
    """Train/valid/test arrays for ``config``: digit subset, then a stratified split."""
    x, y, xt, yt = dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test
    if config.digits:
        x, y = select_digits(x, y, config.digits, relabel=False)
        xt, yt = select_digits(xt, yt, config.digits, relabel=False)
    if config.valid_size >= len(x):
        raise ValueError(f"valid_size {config.valid_size} leaves no training data ({len(x)} images)")
    if config.valid_size > 0:
        x, y, xv, yv = train_valid_split(x, y, config.valid_size, stratify=True, seed=config.seed)
    else:
        xv, yv = x[:0], y[:0]
    return x, y, xv, yv, xt, yt


def run_training(config: TrainConfig, *, data_dir: str | Path | None = None,
                 out_dir: str | Path | None = None, dataset: Dataset | None = None,
                 progress: bool = True, log: Any = print) -> RunResult:
    """Train per ``config``, evaluate on the test set, and write the run directory."""
    if dataset is None:
        dataset = load_mnist(data_dir, progress=progress)
    x, y, xv, yv, xt, yt = prepare_data(config, dataset)
    run_dir = Path(out_dir) if out_dir is not None else new_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", {**asdict(config), "data_dir": str(data_dir or "")})
    log(f"training on {len(x):,} images ({dataset.source}); validating on {len(xv):,}; "
        f"testing on {len(xt):,}")

    estimator = config.estimator(verbose=progress)
    valid = (xv, yv) if len(xv) else None
    t0 = time.perf_counter()
    estimator.fit(x, y, validation_data=valid)
    wall = time.perf_counter() - t0
    clf = estimator.classifier_
    history = estimator.history_

    classes = np.asarray(clf.classes)
    report = classification_report(np.searchsorted(classes, yt),
                                   np.searchsorted(classes, clf.predict(xt)),
                                   num_classes=len(classes),
                                   class_names=[str(c) for c in classes])
    metrics = {
        "test_accuracy": report["accuracy"],
        "train_seconds": history.train_seconds,
        "wall_seconds": wall,
        "epochs": len(history.epoch),
        "best_epoch": history.best_epoch,
        "dataset": {**dataset.describe(), "n_train_used": len(x), "n_valid": len(xv),
                    "digits": list(config.digits) if config.digits else list(range(10))},
        "history": history.to_dict(),
        "test": report,
        "model": {"parameters": clf.model.num_parameters,
                  "layers": [repr(layer) for layer in clf.model.layers]},
        "environment": {"digitnet": __version__, "numpy": np.__version__,
                        "python": platform.python_version(), "machine": platform.machine()},
    }
    clf.metadata.update({"metrics": {k: metrics[k] for k in
                                     ("test_accuracy", "train_seconds", "epochs")},
                         "dataset": metrics["dataset"]})
    clf.save(run_dir / "model.npz")
    write_json(run_dir / "metrics.json", metrics)
    return RunResult(run_dir, clf, metrics)
