"""The training loop: mini-batch (or full-batch) gradient descent with validation,
a live progress bar, a history, early stopping and resumable checkpoints.

``fit`` works on any :class:`~digitnet.nn.Sequential` and loss. Inputs may stay
``uint8``: ``preprocess`` (e.g. a fitted :class:`~digitnet.data.Normalizer`)
scales each batch into a float buffer that is reused every step, so the full
training set is never held in float32.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import io
from .nn.losses import Loss
from .nn.model import Sequential
from .nn.optim import Optimizer


class Preprocess(Protocol):
    def transform(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray: ...


@dataclass
class History:
    """Per-epoch record of a training run (lists indexed by epoch)."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "loss": self.loss, "train_accuracy": self.train_accuracy,
            "val_loss": self.val_loss, "val_accuracy": self.val_accuracy, "lr": self.lr,
            "seconds": self.seconds, "stopped_early": self.stopped_early,
            "best_epoch": self.best_epoch,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(**{k: (list(v) if isinstance(v, list) else v) for k, v in d.items()})

    @property
    def train_seconds(self) -> float:
        return float(sum(self.seconds))


def evaluate(model: Sequential, loss: Loss, x: np.ndarray, y: np.ndarray,
             preprocess: Preprocess | None = None, batch_size: int = 2000) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)``, in evaluation mode."""
    if len(x) == 0:
        return float("nan"), float("nan")
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    buf = None
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            if preprocess is not None:
                if buf is None or buf.shape[0] != len(xb):
                    buf = np.empty(xb.shape, dtype=model.dtype)
                xb = preprocess.transform(xb, out=buf)
            out = model.forward(xb)
            total_loss += loss.forward(out, yb) * len(xb)
            correct += int(np.sum(loss.predict_labels(out) == yb))
    finally:
        model.train(was_training)
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

    def __call__(self, order: np.ndarray | None):
        n = len(self.x)
        for start in range(0, n, self.batch_size):
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
    shuffle: bool = True,
    seed: int | None = 0,
    early_stopping: int | None = None,
    monitor: str = "val_loss",
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[int, History], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> History:
    """Train ``model`` in place and return its :class:`History`.

    Args:
        x, y: training inputs ``(n, d)`` (any dtype ``preprocess`` accepts) and targets
            (``(n,)`` labels or ``(n, k)`` targets, whatever ``loss`` takes).
        batch_size: samples per step; ``None`` or ``0`` means full batch (one step per epoch).
        preprocess: object with ``transform(x, out=buffer)``, applied per batch.
        validation_data: ``(x_val, y_val)`` evaluated after every epoch.
        shuffle, seed: reshuffle every epoch with ``np.random.default_rng(seed)``; same
            seed, same data, same machine -> bit-identical weights.
        early_stopping: stop after this many epochs without improvement of ``monitor``
            (``"val_loss"`` or ``"val_accuracy"``; training metrics if there is no
            validation data) and restore the best weights.
        checkpoint: file written (atomically) after every epoch with everything needed
            to continue: weights, optimiser state, random states, history.
        resume: continue from ``checkpoint`` if it exists; the result is identical to an
            uninterrupted run.
        on_epoch_end: called as ``on_epoch_end(epoch, history)``.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if len(x) == 0:
        raise ValueError("cannot train on an empty dataset")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if monitor not in ("val_loss", "val_accuracy"):
        raise ValueError(f"monitor must be 'val_loss' or 'val_accuracy', got {monitor!r}")
    batch_size = len(x) if not batch_size else min(int(batch_size), len(x))
    rng = np.random.default_rng(seed)
    history = History()
    best = _Best(monitor, early_stopping)
    start_epoch = 0
    if checkpoint is not None and resume and Path(checkpoint).exists():
        start_epoch, history = _restore(checkpoint, model, optimizer, rng, best)
        if log:
            log(f"resumed from {checkpoint} after epoch {start_epoch}")

    batches = _Batches(x, y, batch_size, preprocess, model.dtype)
    params = model.parameters()
    steps = math.ceil(len(x) / batch_size)
    model.train()
    for epoch in range(start_epoch, epochs):
        if best.should_stop:
            break
        optimizer.set_epoch(epoch)
        order = rng.permutation(len(x)) if shuffle else None
        bar = _progress(progress, steps, f"epoch {epoch + 1}/{epochs}")
        t0 = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        for step, (xb, yb) in enumerate(batches(order)):
            out = model.forward(xb)
            value = loss.forward(out, yb)
            if yb.ndim == 1:
                correct += int(np.count_nonzero(loss.predict_labels(out) == yb))
            model.backward(loss.backward())
            optimizer.step(params)
            loss_sum += value * len(xb)
            seen += len(xb)
            if bar is not None and (step % 20 == 0 or step == steps - 1):
                bar.set_postfix_str(f"loss {loss_sum / seen:.4f} acc {correct / seen:.4f}",
                                    refresh=False)
                bar.update(step + 1 - bar.n)
        seconds = time.perf_counter() - t0
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"training diverged in epoch {epoch + 1} (loss is {loss_sum / seen}); "
                f"lower the learning rate (now {optimizer.lr:g})"
            )
        train_acc = correct / seen if y.ndim == 1 else float("nan")
        if validation_data is not None and len(validation_data[0]):
            val_loss, val_acc = evaluate(model, loss, *validation_data, preprocess=preprocess)
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
        if bar is not None:
            bar.set_postfix_str(f"loss {loss_sum / seen:.4f} acc {train_acc:.4f} "
                                f"val_acc {val_acc:.4f} ({seconds:.1f}s)")
            bar.close()
        elif log:
            log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f} acc {train_acc:.4f} "
                f"val_loss {val_loss:.4f} val_acc {val_acc:.4f} ({seconds:.2f}s)")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, optimizer, rng, best, epoch + 1, history)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history)

    history.stopped_early = best.should_stop
    history.best_epoch = best.epoch
    if best.enabled and best.weights is not None:
        model.load_state_dict(best.weights)
    return history


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


def _save_checkpoint(path: str | Path, model: Sequential, optimizer: Optimizer,
                     rng: np.random.Generator, best: _Best, epoch: int, history: History) -> None:
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
    }
    arrays = io.with_prefix(model.state_dict(), "param")
    arrays.update(io.with_prefix(optim_arrays, "optim"))
    if best.weights is not None:
        arrays.update(io.with_prefix(best.weights, "best"))
    io.save_bundle(path, meta, arrays)


def _restore(path: str | Path, model: Sequential, optimizer: Optimizer,
             rng: np.random.Generator, best: _Best) -> tuple[int, History]:
    meta, arrays = io.load_bundle(path, kind="checkpoint")
    if meta["architecture"] != model.config():
        raise io.ModelFileError(f"{path}: checkpoint is for a different architecture")
    model.load_state_dict(io.split_prefix(arrays, "param"))
    optimizer.load_state_dict(meta["optimizer"], io.split_prefix(arrays, "optim"))
    rng.bit_generator.state = copy.deepcopy(meta["rng"])
    for key, gen in model.rngs().items():
        gen.bit_generator.state = copy.deepcopy(meta["layer_rngs"][key])
    b = meta["best"]
    best.score, best.epoch, best.wait, best.should_stop = (
        b["score"], b["epoch"], b["wait"], b["should_stop"])
    saved_best = io.split_prefix(arrays, "best")
    best.weights = saved_best or None
    return int(meta["epoch"]), History.from_dict(meta["history"])
