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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import io, notebook
from .data.augment import Augmenter
from .diagnostics import Diagnostics
from .errors import DigitnetError
from .nn.losses import Loss
from .nn.model import Sequential
from .nn.optim import Optimizer
from .nn.threads import MIN_VALUES, over_blocks

MONITORS = ("val_loss", "val_accuracy")
PROBE_ROWS = 500  # training images the diagnostics look at, at the end of every epoch


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
    diagnostics: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "loss": self.loss, "train_accuracy": self.train_accuracy,
            "val_loss": self.val_loss, "val_accuracy": self.val_accuracy, "lr": self.lr,
            "seconds": self.seconds, "stopped_early": self.stopped_early,
            "best_epoch": self.best_epoch, "monitor": self.monitor, "diagnostics": self.diagnostics,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(**{k: (list(v) if isinstance(v, list) else v) for k, v in d.items()})

    @property
    def train_seconds(self) -> float:
        return float(sum(self.seconds))

    def __repr__(self) -> str:
        if not self.loss:
            return "History(no epochs)"
        parts = [f"{len(self.loss)} epochs", f"loss {self.loss[-1]:.4f}"]
        for key in ("val_accuracy", "train_accuracy"):
            values = getattr(self, key)
            if values and math.isfinite(values[-1]):
                parts.append(f"{key} {values[-1]:.4f}")
                break
        if self.best_epoch is not None:
            parts.append(f"best epoch {self.best_epoch} by {self.monitor}")
        if self.stopped_early:
            parts.append("stopped early")
        return f"History({', '.join(parts)}, {self.train_seconds:.1f}s)"

    def _repr_html_(self) -> str:
        """Loss and accuracy per epoch as an inline figure (matplotlib, when installed), or as
        a table of the epochs."""
        if not self.loss:
            return notebook.section(repr(self))
        try:
            from .plots import plot_history
        except ImportError:  # the plots extra is optional: the numbers instead
            keys = ("loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")
            columns = [getattr(self, k) for k in keys]
            rows = [[i + 1, *(c[i] if i < len(c) else float("nan") for c in columns)]
                    for i in range(len(self.loss))]
            return notebook.section(repr(self), notebook.table(rows, ("epoch", *keys)))
        return notebook.section(repr(self), notebook.png(plot_history(self.to_dict()), "training history"))


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


class Augment(Protocol):
    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


#: Rows prepared at a time: the next chunk is gathered (augmented, scaled) in a background
#: thread while the current one trains. About 6 MB of float32 per chunk, two chunks alive.
CHUNK_ROWS = 2048


def _on_every_thread(n: int, work: Callable[[slice], None]) -> None:
    """``work`` over blocks of ``range(n)`` on every thread (the augmentation's groups)."""
    over_blocks(n, work, values=MIN_VALUES)


class _Batches:
    """Yields ``(x_batch, y_batch)`` for one epoch in the order given.

    Rows are prepared a chunk of several batches at a time: gathered with ``np.take`` into a
    reused buffer, augmented if asked, scaled with ``preprocess``.

    * Without augmentation, the next chunk is prepared in a background thread while the
      current one trains (NumPy releases the GIL in ``take`` and in its arithmetic); it is
      cheap (a few ms an epoch), so it takes little from the matrix products.
    * Augmentation costs far more (about 40 us an image), and a thread distorting beside
      the products slowed each of them down by half: BLAS's threads wait for each other, so
      losing part of one core stalls both. So the step waits while every core distorts the
      next chunk (:class:`~digitnet.data.augment.Augmenter` shares its images out between
      threads), which measured faster.

    Batches are views of the chunk buffers; two buffers take turns, so a batch stays valid
    until the step after it. Augmentation draws from a generator seeded by ``(seed, epoch,
    chunk)``, so the images are the same whatever the timing, and on resume.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, preprocess: Preprocess | None,
                 dtype: np.dtype, augment: Augment | None = None, seed: int = 0,
                 chunk_rows: int = CHUNK_ROWS) -> None:
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.batch_size, self.preprocess, self.augment = batch_size, preprocess, augment
        self.dtype, self.seed = dtype, seed
        self.rows = batch_size * max(1, chunk_rows // batch_size)  # whole batches per chunk
        self._buffers: list[dict[str, np.ndarray]] = [{}, {}]
        self._parallel = isinstance(augment, Augmenter)  # shares its images out between threads

    def _buf(self, store: dict[str, np.ndarray], key: str, n: int, like: np.ndarray,
             dtype: Any) -> np.ndarray:
        buf = store.get(key)
        if buf is None or buf.shape[0] != n:
            buf = store[key] = np.empty((n, *like.shape[1:]), dtype=dtype)
        return buf

    def _chunk(self, order: np.ndarray | None, index: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``[index * rows, (index + 1) * rows)`` of the epoch, ready to train on."""
        start, stop = index * self.rows, min((index + 1) * self.rows, len(self.x))
        store = self._buffers[index % 2]
        if order is None:
            xb, yb = self.x[start:stop], self.y[start:stop]
        else:
            idx = order[start:stop]
            # order is a permutation of range(n), so every index is valid: mode="clip"
            # skips numpy's per-index bounds check (twice as fast as the default)
            n = len(idx)
            xb = self.x.take(idx, axis=0, mode="clip", out=self._buf(store, "x", n, self.x, self.x.dtype))
            yb = self.y.take(idx, axis=0, mode="clip", out=self._buf(store, "y", n, self.y, self.y.dtype))
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            xb = (self.augment(xb, rng, run_groups=_on_every_thread) if self._parallel
                  else self.augment(xb, rng))
        if self.preprocess is not None:
            xb = self.preprocess.transform(xb, out=self._buf(store, "scaled", len(xb), self.x, self.dtype))
        return xb, yb

    def __call__(self, order: np.ndarray | None, first_step: int = 0, epoch: int = 0):
        n = len(self.x)
        per_chunk = self.rows // self.batch_size
        n_chunks = -(-n // self.rows)
        first_chunk = first_step // per_chunk
        if n_chunks - first_chunk <= 1 or self.augment is not None:  # prepare in this thread
            chunks = (self._chunk(order, i, epoch) for i in range(first_chunk, n_chunks))
            yield from self._split(chunks, first_step - first_chunk * per_chunk)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitnet-batches") as pool:
            def prepared():
                pending = pool.submit(self._chunk, order, first_chunk, epoch)
                for i in range(first_chunk, n_chunks):
                    current = pending.result()
                    if i + 1 < n_chunks:
                        pending = pool.submit(self._chunk, order, i + 1, epoch)
                    yield current
            yield from self._split(prepared(), first_step - first_chunk * per_chunk)

    def _split(self, chunks, skip: int):
        """The batches of each chunk, skipping the first ``skip`` batches of the first one."""
        for xc, yc in chunks:
            for start in range(skip * self.batch_size, len(xc), self.batch_size):
                yield xc[start:start + self.batch_size], yc[start:start + self.batch_size]
            skip = 0


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
    augment: Augment | None = None,
    early_stopping: int | None = None,
    monitor: str = "val_loss",
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    diagnostics: bool = False,
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
        augment: ``augment(x_chunk, rng)`` -> augmented rows (training data only), e.g. a
            :class:`~digitnet.data.augment.Augmenter`; its generator follows from ``seed``.
        early_stopping: stop after this many epochs without improvement of ``monitor``
            (``"val_loss"`` or ``"val_accuracy"``; training metrics if there is no
            validation data) and restore the best weights.
        checkpoint: file written (atomically) after every epoch, and on Ctrl-C, with
            everything needed to continue: weights, optimiser state, random states, history.
        resume: continue from ``checkpoint`` if it exists; the result is identical to an
            uninterrupted run.
        progress: a progress bar (default: when stderr is a terminal); without one, ``log``
            gets one line per epoch.
        diagnostics: record per-layer gradient norms, update-to-weight ratios and dead or
            saturated units every epoch (:mod:`digitnet.diagnostics`) in ``History.diagnostics``.
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

    augment_seed = seed if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
    batches = _Batches(x, y, batch_size, preprocess, model.dtype, augment, augment_seed)
    params = model.parameters()
    steps = math.ceil(len(x) / batch_size)
    probe = None
    if diagnostics:
        probe = x[:PROBE_ROWS]
        probe = preprocess.transform(probe) if preprocess is not None else np.asarray(probe, model.dtype)
    diag = Diagnostics(model, probe) if probe is not None else None
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
            if diag is not None:
                diag.begin_epoch(steps)
            t0 = time.perf_counter() - position.seconds
            for xb, yb in batches(order, position.step, epoch):
                out = model.forward(xb)
                value = loss.forward(out, yb)
                if yb.ndim == 1:
                    position.correct += int(np.count_nonzero(loss.predict_labels(out) == yb))
                model.backward(loss.backward())
                if diag is not None and diag.sampled(position.step):
                    diag.before_step(params)
                    optimizer.step(params)
                    diag.after_step(params)
                else:
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
            if diag is not None:
                history.diagnostics.append(diag.end_epoch())
            best.update(epoch + 1, history, model)
            validating = validation_data is not None and len(validation_data[0]) > 0
            validated = f"val_loss {val_loss:.4f} val_acc {val_acc:.4f} " if validating else ""
            line = (f"epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f} acc {train_acc:.4f} "
                    f"{validated}({seconds:.2f}s)")
            if bar is not None:
                bar.set_postfix_str(f"loss {loss_sum / seen:.4f} acc {train_acc:.4f} "
                                    + (f"val_acc {val_acc:.4f} " if validating else "") + f"({seconds:.1f}s)")
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
