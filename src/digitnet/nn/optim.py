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


class Optimizer:
    """Base class: holds the base learning rate, the schedule and per-parameter state."""

    name = "optimizer"

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
        self.total_epochs: int | None = None
        self.epoch, self.lr = 0, self.base_lr

    def set_epoch(self, epoch: int, total: int | None = None) -> None:
        """Apply the schedule for this (0-based) epoch of a run of ``total`` epochs; ``fit``
        calls it at the start of every epoch."""
        self.epoch = int(epoch)
        if total is not None:
            self.total_epochs = int(total)
        self.lr = self.base_lr * self.schedule(self.epoch, self.total_epochs)

    def step(self, params: Iterable[ParamTriple]) -> None:
        self.steps += 1
        for name, p, g in params:
            self.update(name, p, g)

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def _slot(self, name: str, slot: str, like: np.ndarray) -> np.ndarray:
        """Per-parameter state array, zero-initialised on first use."""
        slots = self.state.setdefault(name, {})
        if slot not in slots:
            slots[slot] = np.zeros_like(like)
        return slots[slot]

    def _with_l2(self, name: str, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """``g + wd * p`` written into a scratch array (the gradient itself is left alone)."""
        if not self.weight_decay:
            return g
        out = self._slot(name, "scratch_l2", g)
        np.multiply(p, self.weight_decay, out=out)
        out += g
        return out

    # -- saving and restoring ----------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.base_lr, "weight_decay": self.weight_decay,
                "schedule": self.schedule.config()}

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json_meta, arrays)``: scalars as JSON, state arrays keyed ``"param/slot"``."""
        arrays = {f"{name}/{slot}": arr for name, slots in self.state.items()
                  for slot, arr in slots.items() if not slot.startswith("scratch")}
        meta = {"config": self.config(), "epoch": self.epoch, "total_epochs": self.total_epochs,
                "steps": self.steps}
        return meta, arrays

    def load_state_dict(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if meta.get("config", {}).get("name") != self.name:
            raise ValueError(
                f"optimiser state is for {meta.get('config', {}).get('name')!r}, not {self.name!r}"
            )
        self.state = {}
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

    def __init__(self, lr: float = 0.01, *, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, schedule: str | dict | Schedule | None = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, schedule=schedule)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        g = self._with_l2(name, p, g)
        if self.momentum == 0.0:
            step = self._slot(name, "scratch_step", p)
            np.multiply(g, self.lr, out=step)
            p -= step
            return
        v = self._slot(name, "velocity", p)
        v *= self.momentum
        v += g
        step = self._slot(name, "scratch_step", p)
        if self.nesterov:
            np.multiply(v, self.momentum, out=step)
            step += g
            step *= self.lr
        else:
            np.multiply(v, self.lr, out=step)
        p -= step

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum, "nesterov": self.nesterov}


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is L2 added to the gradient."""
    decoupled = False

    def __init__(self, lr: float = 1e-3, *, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 schedule: str | dict | Schedule | None = None) -> None:
        super().__init__(lr, weight_decay=weight_decay, schedule=schedule)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)

    def step(self, params: Iterable[ParamTriple]) -> None:
        self.steps += 1
        b1, b2 = self.betas
        # fold both bias corrections into one step size and one epsilon
        self._step_size = self.lr * math.sqrt(1 - b2**self.steps) / (1 - b1**self.steps)
        self._eps_hat = self.eps * math.sqrt(1 - b2**self.steps)
        for name, p, g in params:
            self.update(name, p, g)

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        b1, b2 = self.betas
        if self.decoupled and self.weight_decay:
            p *= 1.0 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = self._with_l2(name, p, g)
        m = self._slot(name, "m", p)
        v = self._slot(name, "v", p)
        tmp = self._slot(name, "scratch", p)
        m *= b1
        np.multiply(g, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        np.sqrt(v, out=tmp)
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
