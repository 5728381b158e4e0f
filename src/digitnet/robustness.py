"""How accuracy falls as digits are changed: rotated, shifted, scaled, thickened or thinned,
blurred, made noisy, partly covered, or inverted.

:func:`robustness` runs a classifier on the test images under each perturbation at
increasing strengths (every image gets the same strength; where a direction is needed it is
drawn once per image from a fixed seed, so the numbers are repeatable) and returns the
accuracies as a JSON-able dict. ``digitnet evaluate MODEL --robustness`` prints it as a
table and draws it; reports and ``compare`` show it beside other runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .data.augment import SIDE, affine_grid, blur, dilate, erase_bars, erode, sample

#: perturbation -> (what the strength means, the strengths, in order; the first is "none")
PERTURBATIONS: dict[str, tuple[str, tuple[float, ...]]] = {
    "rotation": ("degrees, clockwise or anticlockwise", (0, 15, 30, 45, 60, 90)),
    "shift": ("pixels, in a random direction", (0, 1, 2, 3, 4, 5, 6)),
    "scale": ("zoom factor", (0.5, 0.75, 1.0, 1.25, 1.5)),
    "thickness": ("pixels of erosion (-) or dilation (+)", (-2, -1, 0, 1, 2)),
    "blur": ("Gaussian sigma, pixels", (0, 0.5, 1.0, 1.5, 2.0)),
    "noise": ("Gaussian noise std, grey levels", (0, 25, 50, 75, 100)),
    "occlusion": ("width of a bar across the digit, pixels", (0, 2, 4, 6, 8)),
    "inversion": ("0: as is, 1: colours inverted", (0, 1)),
}
NEUTRAL = {"rotation": 0, "shift": 0, "scale": 1.0, "thickness": 0, "blur": 0, "noise": 0, "occlusion": 0,
           "inversion": 0}


def perturb(images: np.ndarray, kind: str, strength: float, seed: int = 0) -> np.ndarray:
    """``images`` uint8 ``(n, 784)`` under one perturbation -> float32 ``(n, 784)``, 0-255."""
    n = len(images)
    x = images.reshape(n, SIDE, SIDE).astype(np.float32)
    rng = np.random.default_rng([seed, list(PERTURBATIONS).index(kind)])
    if kind == "rotation":
        sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        x = sample(x, *_grid(n, rotation=sign * strength))
    elif kind == "shift":
        angle = rng.uniform(0, 2 * np.pi, n)
        x = sample(x, *_grid(n, shift=np.stack([np.sin(angle), np.cos(angle)], 1) * strength))
    elif kind == "scale":
        x = sample(x, *_grid(n, scale=np.full(n, float(strength))))
    elif kind == "thickness":
        for _ in range(int(abs(strength))):
            x = dilate(x) if strength > 0 else erode(x)
    elif kind == "blur":
        x = blur(x, float(strength))
    elif kind == "noise":
        x = np.clip(x + rng.normal(0, strength, x.shape).astype(np.float32), 0, 255)
    elif kind == "occlusion":
        x = _occlude(x, int(strength), rng)
    elif kind == "inversion":
        x = 255 - x if strength else x
    else:
        raise ValueError(f"unknown perturbation {kind!r}; choose from {', '.join(PERTURBATIONS)}")
    return x.reshape(n, -1)


def _grid(n: int, rotation: Any = 0.0, scale: Any = 1.0, shift: Any = None) -> tuple[np.ndarray, np.ndarray]:
    return affine_grid(np.broadcast_to(np.asarray(rotation, dtype=np.float64), (n,)),
                       np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,)), np.zeros(n),
                       np.zeros((n, 2)) if shift is None else shift)


def _occlude(x: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """A bar of ``width`` pixels of background across each digit, horizontal or vertical, through
    a random point of its middle third."""
    if width <= 0:
        return x
    x, n = x.copy(), len(x)
    vertical = rng.random(n) < 0.5
    starts = rng.integers(SIDE // 3, 2 * SIDE // 3, n) - width // 2
    erase_bars(x, np.arange(n), np.full(n, width), vertical, starts)
    return x


def robustness(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, *,
               kinds: Sequence[str] = tuple(PERTURBATIONS), seed: int = 0,
               batch: int = 2000) -> dict[str, Any]:
    """Accuracy of ``predict`` (float 0-255 images ``(n, 784)`` -> labels) on ``(x, y)`` under
    each perturbation and strength: ``{"n_images", "perturbations": {kind: {"unit",
    "strengths", "accuracy"}}}``."""
    out: dict[str, Any] = {"n_images": int(len(x)), "seed": seed, "perturbations": {}}
    for kind in kinds:
        unit, strengths = PERTURBATIONS[kind]
        accuracy = []
        for s in strengths:
            correct = 0
            for i in range(0, len(x), batch):
                xb = perturb(x[i:i + batch], kind, s, seed + i)
                correct += int(np.count_nonzero(predict(xb) == y[i:i + batch]))
            accuracy.append(correct / len(x))
        out["perturbations"][kind] = {"unit": unit, "strengths": list(strengths), "accuracy": accuracy}
    return out


def format_table(results: dict[str, Any]) -> str:
    """One line per perturbation: its strengths and the accuracy at each."""
    lines = [f"robustness on {results['n_images']:,} test images (accuracy at each strength):"]
    for kind, r in results["perturbations"].items():
        cells = "  ".join(f"{s:g}: {a:.4f}" for s, a in zip(r["strengths"], r["accuracy"], strict=True))
        lines.append(f"  {kind:<10} {cells}   ({r['unit']})")
    return "\n".join(lines)


def mean_accuracy(results: dict[str, Any]) -> float:
    """The mean accuracy over every perturbation and strength but the neutral ones: one number
    to rank models by."""
    values = [a for kind, r in results["perturbations"].items()
              for s, a in zip(r["strengths"], r["accuracy"], strict=True) if s != NEUTRAL[kind]]
    return float(np.mean(values)) if values else float("nan")
