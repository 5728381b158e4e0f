"""The training loop: mini-batch (or full-batch) gradient descent with validation, progress,
a history, early stopping, and checkpoints that resume to the same weights.

``fit`` works on any :class:`~digitnet.nn.Sequential` and loss. Inputs may stay ``uint8``:
``preprocess`` (e.g. a fitted :class:`~digitnet.data.Normalizer`) scales each batch into a
float buffer that is reused every step, so the full training set is never held in float32.

With ``checkpoint``, everything needed to continue is written (atomically) after every
epoch, and when the run is interrupted with Ctrl-C at the next step boundary, mid-epoch;
``resume=True`` continues from it, and the result is bit-for-bit the weights of an
uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import io
from .errors import DigitnetError
from .nn.losses import Loss
from .nn.model import Sequential
from .nn.optim import Optimizer

MONITORS = ("val_loss", "val_accuracy")


class TrainingDiverged(DigitnetError, FloatingPointError):
    """The loss became NaN or infinite: the learning rate is too high for this network."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a step boundary; ``checkpoint`` (if any) holds the state."""

    def __init__(self, epoch: int, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"interrupted in epoch {epoch}, after step {step}")
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint


class Preprocess(Protocol):
    def transform(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...


@dataclass
class History:
    """Per-epoch record of a training run (lists indexed by epoch).

    ``best_epoch`` (1-based) is the epoch with the best ``monitor`` score: the lowest
    validation loss or the highest validation accuracy (training values where there is no
    validation set). Early stopping restores that epoch's weights."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None
    monitor: str = "val_loss"

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "loss": self.loss, "train_accuracy": self.train_accuracy,
            "val_loss": self.val_loss, "val_accuracy": self.val_accuracy, "lr": self.lr,
            "seconds": self.seconds, "stopped_early": self.stopped_early,
            "best_epoch": self.best_epoch, "monitor": self.monitor,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(**{k: (list(v) if isinstance(v, list) else v) for k, v in d.items()})

    @property
    def train_seconds(self) -> float:
        return float(sum(self.seconds))


def evaluate(model: Sequential, loss: Loss, x: np.ndarray, y: np.ndarray,
             preprocess: Preprocess | None = None, batch_size: int = 2000) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)``, in evaluation mode (in batches of
    ``batch_size``, fewer for a network with wide feature maps: ``Sequential.batch_for``)."""
    if len(x) == 0:
        return float("nan"), float("nan")
    batch_size = model.batch_for(batch_size)
    total_loss, correct = 0.0, 0
    with model.evaluating():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            if preprocess is not None:
                xb = preprocess.transform(xb)
            out = model.forward(xb)
            total_loss += loss.forward(out, yb) * len(xb)
            correct += int(np.sum(loss.predict_labels(out) == yb))
    return total_loss / len(x), correct / len(x)


class _Batches:
    """Yields ``(x_batch, y_batch)`` for one epoch, gathering rows with ``np.take`` into
    reused buffers and scaling them with ``preprocess``: no allocation per step."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int,
                 preprocess: Preprocess | None, dtype: np.dtype) -> None:
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.batch_size, self.preprocess = batch_size, preprocess
        self.dtype = dtype
        self._raw: dict[int, np.ndarray] = {}
        self._scaled: dict[int, np.ndarray] = {}
        self._labels: dict[int, np.ndarray] = {}

    def _buf(self, store: dict[int, np.ndarray], n: int, like: np.ndarray, dtype: Any) -> np.ndarray:
        if n not in store:
            store[n] = np.empty((n, *like.shape[1:]), dtype=dtype)
        return store[n]

    def __call__(self, order: np.ndarray | None, first_step: int = 0):
        n = len(self.x)
        for start in range(first_step * self.batch_size, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            m = stop - start
            if order is None:
                xb, yb = self.x[start:stop], self.y[start:stop]
            else:
                idx = order[start:stop]
                # order is a permutation of range(n), so every index is valid: mode="clip"
                # skips numpy's per-index bounds check (twice as fast as the default)
                xb = self.x.take(idx, axis=0, mode="clip",
                                 out=self._buf(self._raw, m, self.x, self.x.dtype))
                yb = self.y.take(idx, axis=0, mode="clip",
                                 out=self._buf(self._labels, m, self.y, self.y.dtype))
            if self.preprocess is not None:
                xb = self.preprocess.transform(xb, out=self._buf(self._scaled, m, self.x, self.dtype))
            yield xb, yb


@dataclass
class _EpochProgress:
    """Where training stands inside an epoch (what a mid-epoch checkpoint records)."""

    epoch: int  # 0-based epoch in progress
    rng_state: dict[str, Any]  # the shuffling generator's state when the epoch began
    step: int = 0  # steps done in this epoch
    seen: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seconds: float = 0.0


_SAME = object()


def fit(
    model: Sequential,
    loss: Loss,
    optimizer: Optimizer,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    batch_size: int | None = 128,
    preprocess: Preprocess | None = None,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    validation_preprocess: Any = _SAME,
    shuffle: bool = True,
    seed: int | None = 0,
    early_stopping: int | None = None,
    monitor: str = "val_loss",
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> History:
    """Train ``model`` in place and return its :class:`History`.

    Args:
        x, y: training inputs ``(n, d)`` (any dtype ``preprocess`` accepts) and targets
            (``(n,)`` labels or ``(n, k)`` targets, whatever ``loss`` takes).
        epochs: passes over the data; the optimiser's schedule is told this number.
        batch_size: samples per step (``>= 1``); ``None`` means full batch.
        preprocess: object with ``transform(x, out=buffer)``, applied per batch.
        validation_data: ``(x_val, y_val)`` evaluated after every epoch, scaled with
            ``validation_preprocess`` (default: ``preprocess``; ``None``: as given).
        shuffle, seed: reshuffle every epoch with ``np.random.default_rng(seed)``; same
            seed, same data, same machine -> bit-identical weights.
        early_stopping: stop after this many epochs without improvement of ``monitor``
            (``"val_loss"`` or ``"val_accuracy"``; training metrics if there is no
            validation data) and restore the best weights.
        checkpoint: file written (atomically) after every epoch, and on Ctrl-C, with
            everything needed to continue: weights, optimiser state, random states, history.
        resume: continue from ``checkpoint`` if it exists; the result is identical to an
            uninterrupted run.
        progress: a progress bar (default: when stderr is a terminal); without one, ``log``
            gets one line per epoch.
        on_epoch_end: called as ``on_epoch_end(epoch, history)``.

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
        TrainingInterrupted: Ctrl-C (a ``KeyboardInterrupt``), after saving the checkpoint.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if len(x) == 0:
        raise ValueError("cannot train on an empty dataset")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a whole number >= 1 (or None for full batch), "
                         f"got {batch_size!r}")
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be 'val_loss' or 'val_accuracy', got {monitor!r}")
    if early_stopping is not None and early_stopping < 1:
        raise ValueError(f"early_stopping (patience) must be >= 1, got {early_stopping}")
    if validation_preprocess is _SAME:
        validation_preprocess = preprocess
    batch_size = len(x) if batch_size is None else min(int(batch_size), len(x))
    if progress is None:
        progress = sys.stderr.isatty()
    rng = np.random.default_rng(seed)
    history = History(monitor=monitor)
    best = _Best(monitor, early_stopping)
    start_epoch, position = 0, None
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and resume and checkpoint.exists():
        start_epoch, history, position = _restore(checkpoint, model, optimizer, rng, best)
        if log:
            where = f"epoch {start_epoch}" if position is None else \
                f"epoch {position.epoch + 1}, step {position.step}"
            log(f"resumed from {checkpoint} after {where}")

    batches = _Batches(x, y, batch_size, preprocess, model.dtype)
    params = model.parameters()
    steps = math.ceil(len(x) / batch_size)
    model.train()
    with _stop_on_interrupt() as interrupted:
        for epoch in range(start_epoch, epochs):
            if best.should_stop:
                break
            optimizer.set_epoch(epoch, epochs)
            if position is None or position.epoch != epoch:
                position = _EpochProgress(epoch, copy.deepcopy(rng.bit_generator.state))
            else:  # resuming mid-epoch: draw this epoch's order again from its starting state
                rng.bit_generator.state = copy.deepcopy(position.rng_state)
            order = rng.permutation(len(x)) if shuffle else None
            bar = _progress(progress, steps, f"epoch {epoch + 1}/{epochs}")
            if bar is not None:
                bar.update(position.step)
            t0 = time.perf_counter() - position.seconds
            for xb, yb in batches(order, position.step):
                out = model.forward(xb)
                value = loss.forward(out, yb)
                if yb.ndim == 1:
                    position.correct += int(np.count_nonzero(loss.predict_labels(out) == yb))
                model.backward(loss.backward())
                optimizer.step(params)
                position.loss_sum += value * len(xb)
                position.seen += len(xb)
                position.step += 1
                if bar is not None and (position.step % 20 == 0 or position.step == steps):
                    bar.set_postfix_str(f"loss {position.loss_sum / position.seen:.4f} "
                                        f"acc {position.correct / position.seen:.4f}", refresh=False)
                    bar.update(position.step - bar.n)
                if interrupted() and position.step < steps:
                    position.seconds = time.perf_counter() - t0
                    if bar is not None:
                        bar.close()
                    if checkpoint is not None:
                        _save_checkpoint(checkpoint, model, optimizer, rng, best, epoch, history, position)
                    raise TrainingInterrupted(epoch + 1, position.step, checkpoint)
            seconds = time.perf_counter() - t0
            seen, loss_sum = position.seen, position.loss_sum
            if not math.isfinite(loss_sum):
                if bar is not None:
                    bar.close()
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch + 1} (the loss is {loss_sum / seen}); "
                    f"lower the learning rate (now {optimizer.lr:g})")
            train_acc = position.correct / seen if y.ndim == 1 else float("nan")
            if validation_data is not None and len(validation_data[0]):
                val_loss, val_acc = evaluate(model, loss, *validation_data, preprocess=validation_preprocess)
            else:
                val_loss, val_acc = float("nan"), float("nan")
            history.epoch.append(epoch + 1)
            history.loss.append(loss_sum / seen)
            history.train_accuracy.append(train_acc)
            history.val_loss.append(val_loss)
            history.val_accuracy.append(val_acc)
            history.lr.append(optimizer.lr)
            history.seconds.append(seconds)
            best.update(epoch + 1, history, model)
            line = (f"epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f} acc {train_acc:.4f} "
                    f"val_loss {val_loss:.4f} val_acc {val_acc:.4f} ({seconds:.2f}s)")
            if bar is not None:
                bar.set_postfix_str(f"loss {loss_sum / seen:.4f} acc {train_acc:.4f} "
                                    f"val_acc {val_acc:.4f} ({seconds:.1f}s)")
                bar.close()
            elif log:
                log(line)
            position = None
            if checkpoint is not None:
                _save_checkpoint(checkpoint, model, optimizer, rng, best, epoch + 1, history, None)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, history)
            if interrupted() and epoch + 1 < epochs and not best.should_stop:
                raise TrainingInterrupted(epoch + 2, 0, checkpoint)

    history.stopped_early = best.should_stop
    history.best_epoch = best.epoch
    if best.enabled and best.weights is not None:
        model.load_state_dict(best.weights)
    return history


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """While training, the first Ctrl-C asks the loop to stop at the next step boundary (so
    the weights are never left half-updated); a second one interrupts at once. Only in the
    main thread, and only if nobody else has set a SIGINT handler."""
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield requested.is_set
        return

    def handler(signum: int, frame: Any) -> None:
        requested.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class _Best:
    """Early-stopping bookkeeping: best score so far, its epoch and weights."""

    def __init__(self, monitor: str, patience: int | None) -> None:
        self.monitor, self.patience = monitor, patience
        self.enabled = patience is not None and patience > 0
        self.score: float | None = None
        self.epoch: int | None = None
        self.weights: dict[str, np.ndarray] | None = None
        self.wait = 0
        self.should_stop = False

    def update(self, epoch: int, history: History, model: Sequential) -> None:
        if self.monitor == "val_accuracy":
            score = history.val_accuracy[-1]
            if math.isnan(score):
                score = history.train_accuracy[-1]
        else:
            score = history.val_loss[-1]
            if math.isnan(score):
                score = history.loss[-1]
            score = -score  # higher is better
        if self.score is None or score > self.score:
            self.score, self.epoch, self.wait = score, epoch, 0
            if self.enabled:
                self.weights = model.state_dict()
        else:
            self.wait += 1
            if self.enabled and self.wait >= self.patience:
                self.should_stop = True

    def meta(self) -> dict[str, Any]:
        return {"score": self.score, "epoch": self.epoch, "wait": self.wait,
                "should_stop": self.should_stop}


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=True, mininterval=0.2, dynamic_ncols=True)


def _save_checkpoint(path: Path, model: Sequential, optimizer: Optimizer, rng: np.random.Generator,
                     best: _Best, epoch: int, history: History, position: _EpochProgress | None) -> None:
    optim_meta, optim_arrays = optimizer.state_dict()
    meta = {
        "kind": "checkpoint",
        "epoch": epoch,
        "architecture": model.config(),
        "optimizer": optim_meta,
        "history": history.to_dict(),
        "rng": rng.bit_generator.state,
        "layer_rngs": {k: g.bit_generator.state for k, g in model.rngs().items()},
        "best": best.meta(),
        "position": None if position is None else vars(position),
    }
    arrays = io.with_prefix(model.state_dict(), "param")
    arrays.update(io.with_prefix(optim_arrays, "optim"))
    if best.weights is not None:
        arrays.update(io.with_prefix(best.weights, "best"))
    io.save_bundle(path, meta, arrays)


def _restore(path: Path, model: Sequential, optimizer: Optimizer, rng: np.random.Generator,
             best: _Best) -> tuple[int, History, _EpochProgress | None]:
    meta, arrays = io.load_bundle(path, kind="checkpoint")
    try:
        if meta["architecture"] != model.config():
            raise io.ModelFileError(f"{path}: the checkpoint is for a different network")
        model.load_state_dict(io.split_prefix(arrays, "param"))
        optimizer.load_state_dict(meta["optimizer"], io.split_prefix(arrays, "optim"))
        rng.bit_generator.state = copy.deepcopy(meta["rng"])
        for key, gen in model.rngs().items():
            gen.bit_generator.state = copy.deepcopy(meta["layer_rngs"][key])
        b = meta["best"]
        best.score, best.epoch, best.wait = b["score"], b["epoch"], b["wait"]
        best.should_stop = b["should_stop"]
        best.weights = io.split_prefix(arrays, "best") or None
        position = _EpochProgress(**meta["position"]) if meta.get("position") else None
        return int(meta["epoch"]), History.from_dict(meta["history"]), position
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, io.ModelFileError):
            raise
        raise io.ModelFileError(f"{path}: not a usable checkpoint ({exc})") from None
