"""Training diagnostics a learner can read, per epoch and per layer.

* **gradient norm** ``||dL/dW||`` of each layer's weights, averaged over a few steps spread
  through the epoch: vanishing (tiny) or exploding (huge) gradients show here;
* **update-to-weight ratio** ``||W_after - W_before|| / ||W_before||`` of a step, averaged the
  same way: around 1e-3 is the usual healthy range; much smaller means the layer barely learns,
  much larger that it is thrown around;
* **dead or saturated units** at the end of the epoch, on a fixed probe of training images:
  the fraction of ReLU units that output 0 for every probe image (dead: they get no gradient),
  and of sigmoid or tanh units that sit on their flat ends (a sigmoid within 0.05 of 0 or 1, a
  tanh beyond ±0.9, where the slope is under a fifth of its peak) for at least half the probe
  images (saturated: little gradient gets through them).

:class:`Diagnostics` is what ``fit`` calls; each epoch's record goes into
``History.diagnostics``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SAMPLES_PER_EPOCH = 20
SATURATED_SHARE = 0.5
#: activation layer -> where its outputs y are on its flat ends
_SATURATION = {
    "Sigmoid": lambda y: (y < 0.05) | (y > 0.95),
    "RoundedSigmoid": lambda y: (y < 0.05) | (y > 0.95),
    "Tanh": lambda y: np.abs(y) > 0.9,
}
_DEAD = ("ReLU", "LeakyReLU")


class Diagnostics:
    """Measures a model while ``fit`` trains it. ``probe``: scaled inputs ``(m, d)``, a few
    hundred training images."""

    def __init__(self, model: Any, probe: np.ndarray, samples: int = SAMPLES_PER_EPOCH) -> None:
        self.model, self.probe, self.samples = model, probe, samples
        self._every = 1
        self._sums: dict[str, list[float]] = {}
        self._before: dict[str, np.ndarray] = {}

    def begin_epoch(self, steps: int) -> None:
        self._every = max(1, steps // self.samples)
        self._sums = {}

    def sampled(self, step: int) -> bool:
        return step % self._every == 0

    def before_step(self, params: Any) -> None:
        """After backward, before the optimiser: gradient norms, and the weights as they are."""
        for name, p, g in params:
            if name.endswith(".weight"):
                self._sums.setdefault(name, [0.0, 0.0, 0])[0] += float(np.linalg.norm(g))
                self._before[name] = p.copy()

    def after_step(self, params: Any) -> None:
        for name, p, _ in params:
            if name in self._before:
                old = self._before.pop(name)
                sums = self._sums[name]
                sums[1] += float(np.linalg.norm(p - old) / max(np.linalg.norm(old), 1e-12))
                sums[2] += 1

    def end_epoch(self) -> dict[str, Any]:
        """This epoch's record: ``{"layers": {name: {"grad_norm", "update_ratio"}},
        "units": {layer index: {"kind", "measure", "fraction"}}}``."""
        layers = {name: {"grad_norm": g / n, "update_ratio": u / n}
                  for name, (g, u, n) in self._sums.items() if n}
        units = {}
        outputs = self.model.activations(self.probe)
        for i, (layer, y) in enumerate(zip(self.model.layers, outputs, strict=True)):
            kind = type(layer).__name__
            if kind in _DEAD:
                dead = float(np.mean(np.all(y <= 0, axis=0)))
                units[str(i)] = {"kind": kind, "measure": "dead", "fraction": dead}
            elif kind in _SATURATION and i < len(self.model.layers) - 1:
                share = np.mean(_SATURATION[kind](y), axis=0)
                units[str(i)] = {"kind": kind, "measure": "saturated",
                                 "fraction": float(np.mean(share >= SATURATED_SHARE))}
        return {"layers": layers, "units": units}
