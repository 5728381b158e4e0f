"""Optimisers and learning-rate schedules.

An optimiser walks ``(name, parameter, gradient)`` triples (what
``Sequential.parameters()`` returns) and updates each parameter in place. It
knows nothing of layers. Its per-parameter state (momentum buffers, Adam's
moments) is keyed by the parameter's name, so it can be saved beside the model
and restored to resume training exactly.

The update rules match PyTorch's ``torch.optim`` (checked in the tests):

* SGD: ``g += wd * p``; ``v = mu * v + g``; ``p -= lr * (g + mu * v if nesterov else v)``
  (plain SGD when ``mu = 0``).
* Adam: ``g += wd * p`` (L2, coupled); ``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
  ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected ``m_hat, v_hat``.
* AdamW: Adam with decoupled decay ``p -= lr * wd * p`` instead of the L2 term.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .registry import Registry
from .threads import MIN_VALUES, over_blocks

ParamTriple = tuple[str, np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- schedules
SCHEDULES: Registry[Schedule] = Registry("schedule")


@SCHEDULES.register("constant", aliases=("none",))
class Schedule:
    """Learning-rate factor as a function of the (0-based) epoch of a run of ``total``
    epochs, after an optional linear warm-up over the first ``warmup`` epochs. The base
    class keeps the rate constant."""

    def __init__(self, warmup: int = 0) -> None:
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.warmup = int(warmup)

    def __call__(self, epoch: int, total: int | None = None) -> float:
        if epoch < self.warmup:
            return (epoch + 1) / (self.warmup + 1)
        return self.factor(epoch - self.warmup, None if total is None else max(total - self.warmup, 1))

    def factor(self, epoch: int, total: int | None) -> float:
        """The factor ``epoch`` epochs after the warm-up, of ``total`` such epochs."""
        return 1.0

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "warmup": self.warmup}


@SCHEDULES.register("step")
class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``step_size`` epochs: ``gamma ** (epoch // step_size)``."""

    def __init__(self, step_size: int = 10, gamma: float = 0.1, warmup: int = 0) -> None:
        super().__init__(warmup)
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def factor(self, epoch: int, total: int | None) -> float:
        return self.gamma ** (epoch // self.step_size)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "step_size": self.step_size, "gamma": self.gamma}


@SCHEDULES.register("exponential")
class ExponentialDecay(Schedule):
    """Multiply by ``gamma`` every epoch: ``gamma ** epoch``."""

    def __init__(self, gamma: float = 0.95, warmup: int = 0) -> None:
        super().__init__(warmup)
        self.gamma = float(gamma)

    def factor(self, epoch: int, total: int | None) -> float:
        return self.gamma**epoch

    def config(self) -> dict[str, Any]:
        return {**super().config(), "gamma": self.gamma}


@SCHEDULES.register("cosine")
class CosineDecay(Schedule):
    """Half a cosine from 1 down to ``min_factor``:
    ``min_factor + (1 - min_factor) * (1 + cos(pi * t)) / 2`` with ``t = epoch / epochs``.

    ``epochs`` is the length of the decay; by default the run's own number of epochs
    (after warm-up), which ``fit`` tells the optimiser.
    """

    def __init__(self, epochs: int | None = None, min_factor: float = 0.0, warmup: int = 0) -> None:
        super().__init__(warmup)
        if epochs is not None and epochs < 1:
            raise ValueError(f"cosine schedule needs epochs >= 1, got {epochs}")
        if not 0.0 <= min_factor <= 1.0:
            raise ValueError(f"min_factor must be in [0, 1], got {min_factor}")
        self.epochs, self.min_factor = (None if epochs is None else int(epochs)), float(min_factor)

    def factor(self, epoch: int, total: int | None) -> float:
        length = self.epochs or total
        if length is None:
            raise ValueError("the cosine schedule needs the number of epochs: fit passes it to "
                             "optimizer.set_epoch(epoch, total)")
        t = min(epoch, length) / length
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))

    def config(self) -> dict[str, Any]:
        out = {**super().config(), "min_factor": self.min_factor}
        return out if self.epochs is None else {**out, "epochs": self.epochs}


# --------------------------------------------------------------------------- optimisers
OPTIMIZERS: Registry[Optimizer] = Registry("optimizer")

#: The key of the state of a model's parameters packed into one buffer (see ``Parameters.flat``).
FLAT = "*"
#: Values updated at a time: an update makes about ten passes over its arrays, and over a
#: block this size (the parameter, gradient, state and scratch blocks together, about 1.3 MB)
#: the later passes find the values still in cache instead of memory.
BLOCK = 1 << 16


class Optimizer:
    """Base class: the base learning rate, the schedule, and the state of each parameter.

    Subclasses name the state arrays each parameter carries (``slots``, saved in checkpoints)
    and the scratch arrays their update writes into (``scratch``, never saved), and implement
    ``update(p, g, s)``, the rule for one array: ``s`` maps those names to arrays of ``p``'s
    shape. When the parameters are views of one buffer (``params.flat``, as a ``Sequential``
    packs them), the update runs over that buffer at once when it is small, else in blocks of
    :data:`BLOCK` values shared out between threads (:func:`~digitnet.nn.threads.over_blocks`).
    """

    name = "optimizer"
    slots: tuple[str, ...] = ()
    scratch: tuple[str, ...] = ("tmp",)

    def __init__(self, lr: float, *, weight_decay: float = 0.0,
                 schedule: str | dict | Schedule | None = None) -> None:
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.base_lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.schedule = SCHEDULES.create("constant" if schedule is None else schedule)
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self._scratch: dict[str, dict[str, np.ndarray]] = {}
        self._layout: list[tuple[str, int, int, tuple[int, ...]]] = []
        self.total_epochs: int | None = None
        self.epoch, self.lr = 0, self.base_lr

    def set_epoch(self, epoch: int, total: int | None = None) -> None:
        """Apply the schedule for this (0-based) epoch of a run of ``total`` epochs; ``fit``
        calls it at the start of every epoch."""
        self.epoch = int(epoch)
        if total is not None:
            self.total_epochs = int(total)
        self.lr = self.base_lr * self.schedule(self.epoch, self.total_epochs)

    # -- one step -----------------------------------------------------------------------
    def step(self, params: Iterable[ParamTriple]) -> None:
        """Update every parameter from its gradient (``(name, parameter, gradient)`` triples)."""
        self.steps += 1
        self.begin_step()
        flat = getattr(params, "flat", None)
        if flat is None:
            for name, p, g in params:
                self.update(p, g, self._arrays(name, p))
            return
        arrays = self._flat_arrays(flat)
        n = flat.params.size
        if n < MIN_VALUES:  # small enough to stay in cache whole: one update, no thread hand-off
            self.update(flat.params, flat.grads, arrays)
            return

        def update_blocks(part: slice) -> None:  # the blocks of one thread's share
            for start in range(part.start * BLOCK, min(part.stop * BLOCK, n), BLOCK):
                block = slice(start, min(start + BLOCK, n))
                self.update(flat.params[block], flat.grads[block], {k: a[block] for k, a in arrays.items()})

        over_blocks(-(-n // BLOCK), update_blocks, values=n)

    def begin_step(self) -> None:
        """Per-step scalars before the updates (Adam's bias corrections)."""

    def update(self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def _arrays(self, name: str, like: np.ndarray) -> dict[str, np.ndarray]:
        """The state and scratch arrays of parameter ``name`` (zeros on first use)."""
        state = self.state.setdefault(name, {})
        scratch = self._scratch.setdefault(name, {})
        for slot in self.slots:
            if slot not in state:
                state[slot] = np.zeros_like(like)
        for slot in self.scratch:
            if slot not in scratch or scratch[slot].shape != like.shape:
                scratch[slot] = np.empty_like(like)
        return {**state, **scratch}

    def _flat_arrays(self, flat: Any) -> dict[str, np.ndarray]:
        """The state of packed parameters as one array per slot; per-parameter state (from a
        checkpoint, or earlier steps) is packed into it the first time."""
        if flat.layout != self._layout:
            packed = {}
            for slot in self.slots:
                packed[slot] = np.zeros_like(flat.params)
                for name, start, stop, _ in flat.layout:
                    old = self.state.get(name, {}).get(slot)
                    if old is not None:
                        packed[slot][start:stop] = old.reshape(-1)
            self.state = {FLAT: packed}
            self._scratch = {}
            self._layout = list(flat.layout)
        return self._arrays(FLAT, flat.params)

    def per_parameter_state(self) -> dict[str, dict[str, np.ndarray]]:
        """The state by parameter name, packed state split back into each parameter's views."""
        if FLAT not in self.state:
            return self.state
        return {name: {slot: arr[start:stop].reshape(shape) for slot, arr in self.state[FLAT].items()}
                for name, start, stop, shape in self._layout}

    def _with_l2(self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> np.ndarray:
        """``g + wd * p`` written into the scratch array ``s["l2"]`` (the gradient is left alone)."""
        if not self.weight_decay:
            return g
        out = s["l2"]
        np.multiply(p, self.weight_decay, out=out)
        out += g
        return out

    # -- saving and restoring ----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.base_lr, "weight_decay": self.weight_decay,
                "schedule": self.schedule.config()}

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_meta, arrays)``: scalars as JSON, state arrays keyed ``"param/slot"``."""
        arrays = {f"{name}/{slot}": arr for name, slots in self.per_parameter_state().items()
                  for slot, arr in slots.items()}
        meta = {"config": self.config(), "epoch": self.epoch, "total_epochs": self.total_epochs,
                "steps": self.steps}
        return meta, arrays

    def load_state_dict(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if meta.get("config", {}).get("name") != self.name:
            raise ValueError(
                f"optimiser state is for {meta.get('config', {}).get('name')!r}, not {self.name!r}"
            )
        self.state, self._scratch, self._layout = {}, {}, []
        for key, arr in arrays.items():
            name, _, slot = key.rpartition("/")
            self.state.setdefault(name, {})[slot] = np.array(arr)
        self.steps = int(meta.get("steps", 0))
        self.set_epoch(int(meta.get("epoch", 0)), meta.get("total_epochs"))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum and L2 decay."""

    scratch = ("tmp", "l2")

    def __init__(self, lr: float = 0.01, *, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, schedule: str | dict | Schedule | None = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, schedule=schedule)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.slots = ("velocity",) if self.momentum else ()

    def update(self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        g = self._with_l2(p, g, s)
        step = s["tmp"]
        if self.momentum == 0.0:  # p -= lr * g
            np.multiply(g, self.lr, out=step)
            p -= step
            return
        v = s["velocity"]  # v = mu * v + g
        v *= self.momentum
        v += g
        if self.nesterov:  # p -= lr * (g + mu * v)
            np.multiply(v, self.momentum, out=step)
            step += g
            step *= self.lr
        else:  # p -= lr * v
            np.multiply(v, self.lr, out=step)
        p -= step

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum, "nesterov": self.nesterov}


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is L2 added to the gradient."""
    decoupled = False
    slots = ("m", "v")
    scratch = ("tmp", "l2")

    def __init__(self, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 schedule: str | dict | Schedule | None = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, schedule=schedule)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)

    def begin_step(self) -> None:
        b1, b2 = self.betas
        # fold both bias corrections into one step size and one epsilon
        self._step_size = self.lr * math.sqrt(1 - b2**self.steps) / (1 - b1**self.steps)
        self._eps_hat = self.eps * math.sqrt(1 - b2**self.steps)

    def update(self, p: np.ndarray, g: np.ndarray, s: dict[str, np.ndarray]) -> None:
        b1, b2 = self.betas
        if self.decoupled and self.weight_decay:
            p *= 1.0 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = self._with_l2(p, g, s)
        m, v, tmp = s["m"], s["v"], s["tmp"]
        m *= b1  # m = b1 m + (1 - b1) g
        np.multiply(g, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2  # v = b2 v + (1 - b2) g^2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        np.sqrt(v, out=tmp)  # p -= step * m / (sqrt(v) + eps), bias corrections folded in
        tmp += self._eps_hat
        np.divide(m, tmp, out=tmp)
        tmp *= self._step_size
        p -= tmp

    def config(self) -> dict[str, Any]:
        return {**super().config(), "betas": list(self.betas), "eps": self.eps}


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * wd``."""
    decoupled = True

    def __init__(self, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01,
                 schedule: str | dict | Schedule | None = None) -> None:
        super().__init__(lr, betas=betas, eps=eps, weight_decay=weight_decay, schedule=schedule)


@OPTIMIZERS.register("momentum")
class Momentum(SGD):
    """SGD with (heavy-ball) momentum, 0.9 unless told otherwise."""

    def __init__(self, lr: float = 0.01, *, momentum: float = 0.9, weight_decay: float = 0.0,
                 schedule: str | dict | Schedule | None = None) -> None:
        super().__init__(lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule)

    def config(self) -> dict[str, Any]:
        return {k: v for k, v in super().config().items() if k != "nesterov"}


@OPTIMIZERS.register("nesterov")
class Nesterov(SGD):
    """SGD with Nesterov momentum, 0.9 unless told otherwise."""

    def __init__(self, lr: float = 0.01, *, momentum: float = 0.9, weight_decay: float = 0.0,
                 schedule: str | dict | Schedule | None = None) -> None:
        super().__init__(lr, momentum=momentum, nesterov=True, weight_decay=weight_decay, schedule=schedule)

    def config(self) -> dict[str, Any]:
        return {k: v for k, v in super().config().items() if k != "nesterov"}
