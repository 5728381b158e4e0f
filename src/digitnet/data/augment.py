"""Data augmentation for 28x28 digits: random affine maps, elastic distortion, stroke
thickness and noise. NumPy only.

Every transformation works on a batch of images ``(n, 28, 28)`` (floats on the 0-255
scale) at once. The deterministic pieces (:func:`affine_grid`, :func:`sample`,
:func:`smooth`, :func:`dilate`, :func:`erode`, ...) are also what the robustness evaluation
uses; the random ones draw their parameters from a ``numpy.random.Generator``, so the same
generator state gives the same augmented images.

* **affine**: rotation, scale, shear and shift, applied by bilinear sampling (pixels that
  come from outside the image are 0, the background);
* **elastic**: Simard, Steinkraus and Platt (2003): a displacement field of uniform noise in
  [-1, 1] for each pixel and axis, smoothed by a Gaussian of width ``sigma`` and scaled by
  ``alpha`` pixels; it is added to the affine map, so both cost one sampling pass;
* **thickness**: grey-level dilation (thicker strokes) or erosion (thinner) by up to two
  pixels, the last one partly blended in, each with probability ``p / 2``;
* **noise**: Gaussian noise of ``std`` grey levels (or of a level drawn for each image, up to
  ``max_std``) on a fraction ``p`` of the images, then clipped to 0-255;
* **erase**: with probability ``p``, a bar of background up to ``width`` pixels wide across
  the digit (horizontal or vertical), so that a covered stroke does not decide the answer;
* **invert**: with probability ``p``, white on black becomes black on white.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

SIDE = 28


# --------------------------------------------------------------------------- deterministic pieces
def affine_grid(rotation: np.ndarray, scale: np.ndarray, shear: np.ndarray, shift: np.ndarray,
                side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates ``(rows, cols)``, each ``(n, side, side)``, of an affine map about the
    image centre: the output pixel at ``(r, c)`` takes the input at ``(rows[r, c], cols[r, c])``.

    ``rotation`` and ``shear`` are in degrees (counter-clockwise, and along x), ``scale`` is
    the zoom factor (> 1 enlarges the digit), ``shift`` is ``(n, 2)`` pixels ``(down, right)``;
    all have one entry per image. The map sends input ``u`` to ``A u + t``; sampling needs the
    inverse, ``u = A^-1 (out - t)``, taken about the centre.
    """
    theta, phi = np.radians(rotation), np.radians(shear)
    cos, sin, tan = np.cos(theta), np.sin(theta), np.tan(phi)
    # forward map in (x = col, y = row) coordinates: rotate, shear along x, then scale
    a = np.stack([np.stack([cos, -sin + cos * tan], -1), np.stack([sin, cos + sin * tan], -1)], -2)
    a *= np.asarray(scale, dtype=np.float64)[:, None, None]
    inv = np.linalg.inv(a)  # (n, 2, 2)
    centre = (side - 1) / 2
    idx = np.arange(side, dtype=np.float64) - centre  # centred output coordinates
    shift = np.asarray(shift, dtype=np.float64)
    out_x = idx[None, :] - shift[:, 1, None]  # (n, side): output col x - shift, along the columns
    out_y = idx[None, :] - shift[:, 0, None]  # (n, side): output row y - shift, along the rows
    # src = inv @ (out - t): a term that varies along the columns plus one along the rows, each
    # (n, side) in float64, added into the (n, side, side) float32 grids
    def grid(along_cols: np.ndarray, along_rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(inv), side, side), dtype=np.float32)
        np.add(along_cols.astype(np.float32)[:, None, :], along_rows.astype(np.float32)[:, :, None], out=out)
        return out

    return (grid(inv[:, 1, 0, None] * out_x + centre, inv[:, 1, 1, None] * out_y),
            grid(inv[:, 0, 0, None] * out_x + centre, inv[:, 0, 1, None] * out_y))


def sample(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear sampling: ``out[i, r, c] = images[i]`` at ``(rows[i, r, c], cols[i, r, c])``,
    with 0 outside the image. ``images`` ``(n, h, w)``; ``rows``, ``cols`` of the output's
    shape ``(n, h, w)``. float32 out."""
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2), dtype=np.float32)  # a ring of background around each image
    padded[:, 1:-1, 1:-1] = images
    r = np.clip(rows, -1, h - 0.001, dtype=np.float32)  # coordinates kept inside the padded image
    c = np.clip(cols, -1, w - 0.001, dtype=np.float32)
    r += 1
    c += 1
    r0, c0 = np.floor(r), np.floor(c)
    r -= r0  # r, c: now the fractions
    c -= c0
    top_left = r0.astype(np.intp)  # flat index of the top-left neighbour in the padded batch
    top_left *= w + 2
    top_left += c0.astype(np.intp)
    top_left += (np.arange(n, dtype=np.intp) * ((h + 2) * (w + 2)))[:, None, None]
    flat = padded.reshape(-1)
    p00 = np.take(flat, top_left)  # np.take: several times faster than flat[index]
    top_left += 1
    top = np.take(flat, top_left) - p00  # top = p00 + fc * (p01 - p00)
    top *= c
    top += p00
    top_left += w + 1
    p10 = np.take(flat, top_left)
    top_left += 1
    bottom = np.take(flat, top_left) - p10  # bottom = p10 + fc * (p11 - p10)
    bottom *= c
    bottom += p10
    bottom -= top  # out = top + fr * (bottom - top)
    bottom *= r
    bottom += top
    return bottom


def gaussian_matrix(sigma: float, side: int = SIDE) -> np.ndarray:
    """``(side, side)`` matrix ``G`` with ``G @ f`` the Gaussian smoothing of a column ``f``
    (each row sums to 1, so a constant field stays constant at the borders)."""
    idx = np.arange(side)
    g = np.exp(-((idx[:, None] - idx[None, :]) ** 2) / (2.0 * sigma**2))
    return (g / g.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth(fields: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of each ``(side, side)`` field in ``fields`` ``(n, side, side)``:
    ``G @ f @ G.T``, as two large matrix products."""
    n, h, w = fields.shape
    g = gaussian_matrix(sigma, h)
    across = (fields.reshape(n * h, w) @ g.T).reshape(n, h, w)  # smooth each row
    return np.ascontiguousarray(np.swapaxes(
        (np.swapaxes(across, 1, 2).reshape(n * w, h) @ g.T).reshape(n, w, h), 1, 2))  # then each column


def _cross(images: np.ndarray, reduce: Any) -> np.ndarray:
    """``reduce`` (``np.maximum`` or ``np.minimum``) of each pixel and its four neighbours, with
    background (0) outside the image."""
    n, h, w = images.shape
    padded = np.zeros((n, h + 2, w + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = images
    out = images.astype(np.float32, copy=True)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        reduce(out, padded[:, 1 + dr:1 + dr + h, 1 + dc:1 + dc + w], out=out)
    return out


def dilate(images: np.ndarray, amount: float | np.ndarray = 1.0) -> np.ndarray:
    """Grey-level dilation with a cross of radius 1 (each pixel becomes the maximum of itself
    and its four neighbours: strokes get thicker), blended in by ``amount`` (0: unchanged, 1:
    fully dilated; one value or one per image)."""
    return _blend(images, _cross(images, np.maximum), amount)


def erode(images: np.ndarray, amount: float | np.ndarray = 1.0) -> np.ndarray:
    """Grey-level erosion with the same cross (the minimum: strokes get thinner), blended."""
    return _blend(images, _cross(images, np.minimum), amount)


def _repeated(grow: Callable[[np.ndarray, float | np.ndarray], np.ndarray], images: np.ndarray,
              amount: np.ndarray) -> np.ndarray:
    """``grow`` (:func:`dilate` or :func:`erode`) applied ``amount[i]`` times to image ``i``
    (``amount`` in [0, 2]): full passes, then the fraction of one more blended in."""
    full = amount >= 1
    if full.any():
        images = images.copy()
        images[full] = grow(images[full], 1.0)
    return grow(images, np.where(full, amount - 1, amount))


def _blend(images: np.ndarray, changed: np.ndarray, amount: float | np.ndarray) -> np.ndarray:
    t = np.asarray(amount, dtype=np.float32).reshape(-1, 1, 1) if np.ndim(amount) else np.float32(amount)
    return images + t * (changed - images)


def erase_bars(images: np.ndarray, which: np.ndarray, widths: np.ndarray, vertical: np.ndarray,
               starts: np.ndarray) -> None:
    """In place: a bar of background across each image ``which[i]`` of ``images`` ``(n, h, w)``,
    ``widths[i]`` pixels wide from ``starts[i]``, vertical or horizontal."""
    for i, w, v, s in zip(which, widths, vertical, starts, strict=True):
        if v:
            images[i, :, max(s, 0):s + w] = 0
        else:
            images[i, max(s, 0):s + w, :] = 0


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each image (the same smoothing as the elastic fields)."""
    return smooth(images.astype(np.float32), sigma) if sigma > 0 else images.astype(np.float32)


# --------------------------------------------------------------------------- random transformations
@dataclass(frozen=True)
class Affine:
    """Random affine map: rotation uniform in ±``rotation`` degrees, zoom uniform in
    1 ± ``scale``, shear uniform in ±``shear`` degrees, shift uniform in ±``shift`` pixels
    along each axis."""

    rotation: float = 12.0
    scale: float = 0.12
    shear: float = 10.0
    shift: float = 2.5


@dataclass(frozen=True)
class Elastic:
    """Elastic distortion: uniform [-1, 1] displacements smoothed by a Gaussian of ``sigma``
    pixels and scaled by ``alpha`` pixels (Simard et al. use sigma 4, alpha 34; the default
    here is a little smoother)."""

    alpha: float = 30.0
    sigma: float = 5.0


@dataclass(frozen=True)
class Thickness:
    """With probability ``p``, thicken (half the time) or thin the strokes by an amount
    uniform in [0, ``amount``] pixels: one-pixel dilations or erosions, the last blended in by
    the fraction (an amount of 1.5 is one full pass and half of a second). Below 1, most of
    MNIST's two-pixel strokes survive thinning; up to 2, the network also sees the broken,
    faint strokes of a thin pen."""

    p: float = 0.5
    amount: float = 0.7


@dataclass(frozen=True)
class Noise:
    """Gaussian pixel noise of standard deviation ``std`` grey levels (0-255 scale) on a
    fraction ``p`` of the images; with ``max_std`` above ``std``, each noised image's level is
    drawn uniformly from [``std``, ``max_std``] (clean and very noisy digits in one run)."""

    std: float = 12.0
    max_std: float = 0.0
    p: float = 1.0


@dataclass(frozen=True)
class Erase:
    """With probability ``p``, a bar of background 1 to ``width`` pixels wide across the digit,
    horizontal or vertical, through a random point of its middle third."""

    p: float = 0.3
    width: float = 6.0


@dataclass(frozen=True)
class Invert:
    """With probability ``p``, the image inverted (``255 - x``)."""

    p: float = 0.05


KINDS: dict[str, type] = {"affine": Affine, "elastic": Elastic, "thickness": Thickness, "noise": Noise,
                          "erase": Erase, "invert": Invert}
LIMITS: dict[str, tuple[float, float]] = {  # what a setting may be, to catch typos early
    "rotation": (0, 180), "scale": (0, 0.9), "shear": (0, 60), "shift": (0, 14), "alpha": (0, 200),
    "sigma": (0.5, 28), "p": (0, 1), "amount": (0, 2), "std": (0, 255), "max_std": (0, 255),
    "width": (1, 14),
}


class Augmenter:
    """A chain of random transformations, applied as thickness, then the warp (affine and
    elastic, one sampling pass), then erasing, noise and inversion.

    ``augmenter(x, rng)``: ``x`` uint8 or float ``(n, 784)`` on the 0-255 scale -> float32
    ``(n, 784)`` on the same scale, ready for a :class:`~digitnet.data.Normalizer`.
    """

    #: Images distorted at a time: the temporaries of a few hundred stay in cache (2.5x faster).
    BATCH = 256

    def __init__(self, affine: Affine | None = None, elastic: Elastic | None = None,
                 thickness: Thickness | None = None, noise: Noise | None = None, erase: Erase | None = None,
                 invert: Invert | None = None) -> None:
        self.affine, self.elastic, self.thickness, self.noise = affine, elastic, thickness, noise
        self.erase, self.invert = erase, invert

    @classmethod
    def from_config(cls, config: Mapping[str, Mapping[str, float]]) -> Augmenter:
        """From ``{"affine": {"rotation": 15}, "elastic": {}}`` (unnamed settings: defaults)."""
        parts = {}
        for kind, settings in config.items():
            if kind not in KINDS:
                raise ValueError(f"unknown augmentation {kind!r}; choose from {', '.join(KINDS)}")
            parts[kind] = KINDS[kind](**settings)
        return cls(**parts)

    def config(self) -> dict[str, dict[str, float]]:
        return {kind: asdict(part) for kind, part in vars(self).items() if part is not None}

    def __repr__(self) -> str:
        return f"Augmenter({self.config()})"

    def __call__(self, x: np.ndarray, rng: np.random.Generator, *,
                 run_groups: Callable[[int, Callable[[slice], None]], None] | None = None) -> np.ndarray:
        """The images in groups of :attr:`BATCH`, each group with its own generator (seeded
        from ``rng``), so the images are the same however the groups are shared out.

        ``run_groups(n, work)`` calls ``work(groups)`` for slices of ``range(n)`` that cover
        it, perhaps on several threads at once (``digitnet.train`` passes the engine's
        :func:`~digitnet.nn.threads.over_blocks`); by default every group runs here, in turn.
        """
        n = len(x)
        out = np.empty((n, SIDE * SIDE), dtype=np.float32)
        starts = range(0, n, self.BATCH)
        seeds = rng.integers(2**63, size=len(starts))

        def distort(groups: slice) -> None:
            for i in range(groups.start, groups.stop):
                rows = slice(starts[i], starts[i] + self.BATCH)
                out[rows] = self._distort(x[rows], np.random.default_rng(seeds[i]))

        with _blas_on_one_thread():  # the same products, so the same rounding, on any thread
            if run_groups is None:
                distort(slice(0, len(starts)))
            else:
                run_groups(len(starts), distort)
        return out

    def _distort(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One group of images ``(n, 784)`` -> distorted float32 ``(n, 784)`` (a copy)."""
        n = len(x)
        images = np.array(x, dtype=np.float32).reshape(n, SIDE, SIDE)  # a copy: x is left alone
        if self.thickness is not None and self.thickness.p > 0:
            choice, half = rng.random(n), self.thickness.p / 2
            amount = rng.uniform(0, self.thickness.amount, n).astype(np.float32)
            for chosen, grow in ((choice < half, dilate), ((choice >= half) & (choice < 2 * half), erode)):
                if chosen.any():
                    images[chosen] = _repeated(grow, images[chosen], amount[chosen])
        if self.affine is not None or self.elastic is not None:
            images = sample(images, *self._grid(n, rng))
        if self.erase is not None and self.erase.p > 0:
            chosen = np.flatnonzero(rng.random(n) < self.erase.p)
            widths = rng.integers(1, int(self.erase.width) + 1, len(chosen))
            vertical = rng.random(len(chosen)) < 0.5
            starts = rng.integers(SIDE // 3, 2 * SIDE // 3, len(chosen)) - widths // 2
            erase_bars(images, chosen, widths, vertical, starts)
        if self.noise is not None and self.noise.p > 0 and max(self.noise.std, self.noise.max_std) > 0:
            level = np.full(n, self.noise.std, dtype=np.float32)
            if self.noise.max_std > self.noise.std:
                level = rng.uniform(self.noise.std, self.noise.max_std, n).astype(np.float32)
            chosen = np.flatnonzero(rng.random(n) < self.noise.p) if self.noise.p < 1 else np.arange(n)
            noise = rng.standard_normal((len(chosen), SIDE, SIDE), dtype=np.float32)
            noise *= level[chosen, None, None]
            noise += images[chosen]
            images[chosen] = np.clip(noise, 0, 255, out=noise)
        if self.invert is not None and self.invert.p > 0:
            flip = rng.random(n) < self.invert.p
            images[flip] = 255 - images[flip]
        return images.reshape(n, -1)

    def _grid(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a = self.affine or Affine(0, 0, 0, 0)
        rotation, zoom = rng.uniform(-a.rotation, a.rotation, n), 1 + rng.uniform(-a.scale, a.scale, n)
        shear, shift = rng.uniform(-a.shear, a.shear, n), rng.uniform(-a.shift, a.shift, (n, 2))
        rows, cols = affine_grid(rotation, zoom, shear, shift)
        if self.elastic is not None and self.elastic.alpha > 0:
            # alpha * G (2u - 1) G.T with u uniform in [0, 1): rows of G sum to 1, so it is
            # 2 alpha * G u G.T - alpha, and the scaling goes into the sums below
            field = smooth(rng.random((2 * n, SIDE, SIDE), dtype=np.float32), self.elastic.sigma)
            alpha = np.float32(self.elastic.alpha)
            field *= 2 * alpha
            rows += field[:n]
            rows -= alpha
            cols += field[n:]
            cols -= alpha
        return rows, cols


_BLAS: Any = None


def _blas_on_one_thread() -> Any:
    """A context in which BLAS runs each product on the calling thread only. The smoothing's
    small products, called from several threads at once, would otherwise queue for BLAS's
    own thread pool one after another (no faster with two threads than with one)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def check_config(value: Any, key: str = "augment") -> dict[str, dict[str, float]]:
    """A valid augmentation config, from ``["affine", "elastic"]`` (defaults) or a table
    ``{affine = {rotation = 15}, noise = {}}``; anything else is a ``ValueError`` naming the
    key."""
    if isinstance(value, (list, tuple)):
        value = {kind: {} for kind in value}
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{key}: expected augmentation names ({', '.join(KINDS)}) or a table of them")
    out: dict[str, dict[str, float]] = {}
    for kind, settings in value.items():
        if kind not in KINDS:
            raise ValueError(f"{key}: unknown augmentation {kind!r}; choose from {', '.join(KINDS)}")
        if not isinstance(settings, Mapping):
            raise ValueError(f"{key}.{kind}: expected a table of settings, got {settings!r}")
        names = [f.name for f in fields(KINDS[kind])]
        for name, v in settings.items():
            if name not in names:
                raise ValueError(f"{key}.{kind}: no setting {name!r}; its settings: {', '.join(names)}")
            lo, hi = LIMITS[name]
            number = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not number or not lo <= v <= hi:
                raise ValueError(f"{key}.{kind}.{name}: expected a number from {lo:g} to {hi:g}, got {v!r}")
        out[kind] = {name: float(v) for name, v in settings.items()}
    return out
