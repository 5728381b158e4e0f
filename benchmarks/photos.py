"""Photo-like digits: how many a model reads, with and without background removal.

    .venv/bin/python -m benchmarks.photos --model RUN_DIR [--per-case 20] [--seed 0] [--json FILE]

Every case starts from MNIST test digits the model reads correctly as they are (so a miss
is the photo's fault, not the digit's), enlarged ten times and printed as dark pen on light
paper, and then photographed badly: under a light gradient, on textured paper with dust,
with a shadow band across, written thin, small in a large frame, off-centre, slightly
rotated, and combinations of these (the last one also JPEG-compressed). ``clean`` and
``canvas`` (light on dark, as the web page draws) are the cases the plain preparation
already read. Each image goes through ``digitnet.data.images.mnist_like`` twice: as it is,
and with ``remove_background=False`` (one flat paper level), and the table gives the share
read correctly each way. The tests (``tests/test_photos.py``) render the same cases.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PAPER = 0.9  # reflectance of the paper (1 is a perfect white)
PEN = 0.12  # reflectance of the ink
SCALE = 10  # MNIST pixels become SCALE x SCALE photo pixels


# --------------------------------------------------------------------------- the pieces
def enlarge(digit: np.ndarray, scale: float = SCALE) -> np.ndarray:
    """An MNIST digit ``uint8 (28, 28)`` (or ``(784,)``) -> ink coverage ``float64`` in 0-1,
    ``scale`` times larger (bicubic, as a smooth pen line rather than blocks)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(digit, dtype=np.uint8).reshape(28, 28))
    side = round(28 * scale)
    big = img.resize((side, side), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, dtype=np.float64) / 255.0, 0.0, 1.0)


def rotate(ink: np.ndarray, degrees: float) -> np.ndarray:
    """Coverage ``(h, w)`` turned by ``degrees`` (counter-clockwise), on a larger canvas."""
    from PIL import Image

    img = Image.fromarray(ink.astype(np.float32), mode="F")
    return np.asarray(img.rotate(degrees, Image.Resampling.BILINEAR, expand=True), dtype=np.float64)


def thin(ink: np.ndarray, pixels: int) -> np.ndarray:
    """Coverage with every stroke ``pixels`` narrower on each side (a grey erosion by a
    disk): a fine pen instead of MNIST's broad one."""
    from scipy import ndimage

    r = np.arange(-pixels, pixels + 1)
    disk = r[:, None] ** 2 + r[None, :] ** 2 <= pixels**2
    return ndimage.grey_erosion(ink, footprint=disk)


def place(ink: np.ndarray, size: tuple[int, int], at: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """Coverage ``ink`` on a blank page ``size = (h, w)``, its centre at the fractions ``at``
    (row, column) of the page, kept inside it."""
    h, w = size
    ih, iw = ink.shape
    if ih > h or iw > w:
        raise ValueError(f"a {ih}x{iw} digit does not fit on a {h}x{w} page")
    top = int(np.clip(round(at[0] * h - ih / 2), 0, h - ih))
    left = int(np.clip(round(at[1] * w - iw / 2), 0, w - iw))
    page = np.zeros(size)
    page[top : top + ih, left : left + iw] = ink
    return page


def gradient(size: tuple[int, int], darkest: float, angle: float) -> np.ndarray:
    """Light falling off linearly across the page: 1 on one side, ``darkest`` on the
    opposite one, along the direction ``angle`` (degrees)."""
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]]
    t = np.cos(np.radians(angle)) * cols / size[1] + np.sin(np.radians(angle)) * rows / size[0]
    t = (t - t.min()) / (t.max() - t.min())
    return 1.0 - (1.0 - darkest) * t


def shadow(size: tuple[int, int], rng: np.random.Generator, depth: float = 0.5) -> np.ndarray:
    """A soft-edged shadow band (a third of the page wide, slightly tilted, across part of
    the digit) that lets ``depth`` of the light through."""
    from scipy import ndimage

    h, w = size
    rows, cols = np.mgrid[0:h, 0:w]
    tilt = rng.uniform(-0.3, 0.3)
    start = rng.uniform(0.15, 0.45) * w
    band = (cols - tilt * (rows - h / 2) >= start) & (cols - tilt * (rows - h / 2) < start + w / 3)
    soft = ndimage.gaussian_filter(band.astype(np.float64), sigma=0.02 * w)
    return 1.0 - (1.0 - depth) * soft


def texture(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Paper reflectance changes: fine grain plus broad blotches (about +-0.05 each)."""
    from scipy import ndimage

    grain = rng.normal(0.0, 0.02, size)
    blotches = ndimage.gaussian_filter(rng.normal(0.0, 1.0, size), sigma=0.04 * max(size))
    blotches *= 0.05 / max(float(np.abs(blotches).max()), 1e-12)
    return grain + blotches


def dust(size: tuple[int, int], rng: np.random.Generator, n: int = 25) -> np.ndarray:
    """Coverage of ``n`` small specks (1-3 pixels across) scattered over the page."""
    page = np.zeros(size)
    for _ in range(n):
        r = int(rng.integers(1, 3))
        y, x = int(rng.integers(r, size[0] - r)), int(rng.integers(r, size[1] - r))
        page[y - r + 1 : y + r, x - r + 1 : x + r] = rng.uniform(0.5, 1.0)
    return page


def photograph(ink: np.ndarray, light: np.ndarray | float = 1.0,
               paper: np.ndarray | float = 0.0) -> np.ndarray:
    """Coverage on a page -> ``uint8`` grayscale as a camera sees it: reflectance (paper,
    plus ``paper`` changes, where there is no ink; pen where there is) times ``light``."""
    reflectance = (PAPER + paper) * (1.0 - ink) + PEN * ink
    return np.clip(np.rint(255.0 * reflectance * light), 0, 255).astype(np.uint8)


def jpeg(gray: np.ndarray, quality: int = 80) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --------------------------------------------------------------------------- the cases
Render = Callable[[np.ndarray, np.random.Generator], "np.ndarray | bytes"]
PAGE = (360, 360)


def _clean(d, rng):
    return photograph(place(enlarge(d), PAGE))


def _canvas(d, rng):  # light ink on a dark canvas, as the web page draws
    return np.rint(255.0 * place(enlarge(d), (280, 280))).astype(np.uint8)


def _gradient(d, rng):
    return photograph(place(enlarge(d), PAGE), gradient(PAGE, 0.45, rng.uniform(0, 360)))


def _texture(d, rng):
    ink = np.clip(place(enlarge(d), PAGE) + dust(PAGE, rng), 0.0, 1.0)
    return photograph(ink, paper=texture(PAGE, rng))


def _shadow(d, rng):
    return photograph(place(enlarge(d), PAGE), shadow(PAGE, rng))


def _thin(d, rng):
    return photograph(place(thin(enlarge(d), 5), PAGE))


def _small(d, rng):
    big = (720, 960)
    return photograph(place(enlarge(d, 3), big, (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))))


def _off_centre(d, rng):
    size = (450, 600)
    return photograph(place(enlarge(d, 6), size, (rng.uniform(0.15, 0.3), rng.uniform(0.1, 0.25))))


def _rotated(d, rng):
    return photograph(place(rotate(enlarge(d), rng.choice([-1, 1]) * 10.0), PAGE))


def _gradient_texture_shadow(d, rng):
    ink = np.clip(place(enlarge(d), PAGE) + dust(PAGE, rng), 0.0, 1.0)
    light = gradient(PAGE, 0.6, rng.uniform(0, 360)) * shadow(PAGE, rng, 0.6)
    return photograph(ink, light, texture(PAGE, rng))


def _small_gradient(d, rng):
    big = (720, 960)
    ink = place(enlarge(d, 3), big, (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)))
    return photograph(ink, gradient(big, 0.5, rng.uniform(0, 360)))


def _thin_shadow(d, rng):
    return photograph(place(thin(enlarge(d), 5), PAGE), shadow(PAGE, rng))


def _phone_photo(d, rng):  # everything at once, off-centre and rotated, saved as JPEG
    size = (480, 640)
    ink = place(rotate(enlarge(d, 8), rng.choice([-1, 1]) * 8.0), size, (0.4, 0.35)) + dust(size, rng)
    light = gradient(size, 0.55, rng.uniform(0, 360)) * shadow(size, rng, 0.6)
    return jpeg(photograph(np.clip(ink, 0.0, 1.0), light, texture(size, rng)))


CASES: dict[str, Render] = {
    "clean": _clean,
    "canvas": _canvas,
    "gradient": _gradient,
    "texture": _texture,
    "shadow": _shadow,
    "thin": _thin,
    "small": _small,
    "off-centre": _off_centre,
    "rotated": _rotated,
    "gradient+texture+shadow": _gradient_texture_shadow,
    "small+gradient": _small_gradient,
    "thin+shadow": _thin_shadow,
    "phone-photo": _phone_photo,
}
"""Case name -> ``render(digit uint8 (784,), rng) -> uint8 (h, w) or JPEG bytes``."""

PLAIN = ("clean", "canvas")
"""The cases the preparation read before it removed backgrounds."""


def render(case: str, digit: np.ndarray, seed: int = 0) -> np.ndarray | bytes:
    """One photo-like image of ``digit`` for ``case`` (the same for the same seed)."""
    return CASES[case](digit, np.random.default_rng(seed))


# --------------------------------------------------------------------------- the measurement
def readable_digits(clf: Any, x: np.ndarray, y: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` test digits of each class that ``clf`` reads correctly as
    they are: ``uint8 (n, 784)`` and their labels."""
    right = clf.predict(x) == y
    idx = np.concatenate([np.flatnonzero(right & (y == c))[:per_class] for c in clf.classes])
    return x[idx], y[idx]


def measure(clf: Any, x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, dict[str, int]]:
    """For every case: how many of the digits ``x`` are read as ``y``, prepared with and
    without background removal (a blank-image error counts as a miss)."""
    from digitnet.data.images import NoInkError, mnist_like

    results = {}
    for case in CASES:
        counts = {"n": len(x), "removed": 0, "flat": 0}
        for i, (digit, label) in enumerate(zip(x, y, strict=True)):
            image = render(case, digit, seed + i)
            for key, remove in (("removed", True), ("flat", False)):
                try:
                    pixels = mnist_like(image, remove_background=remove).reshape(1, -1)
                except NoInkError:
                    continue
                counts[key] += int(clf.predict(pixels)[0] == label)
        results[case] = counts
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="run directory or model.npz")
    parser.add_argument("--per-case", type=int, default=20, metavar="N",
                        help="digits per case, spread over the classes (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST directory (default: $DIGITNET_DATA)")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the counts as JSON")
    args = parser.parse_args(argv)

    from digitnet.classifier import Classifier
    from digitnet.data import load_mnist

    path = Path(args.model)
    clf = Classifier.load(path / "model.npz" if path.is_dir() else path)
    ds = load_mnist(args.data, progress=False)
    per_class = -(-args.per_case // len(clf.classes))
    x, y = readable_digits(clf, ds.x_test, ds.y_test, per_class)
    order = np.argsort(np.arange(len(y)) % per_class, kind="stable")[: args.per_case]  # classes in turn
    x, y = x[order], y[order]
    results = measure(clf, x, y, args.seed)
    print(f"{path}: {len(y)} digits per case (read correctly as they are), seed {args.seed}")
    print(f"{'case':<26}{'background removed':>20}{'flat background':>18}")
    for case, c in results.items():
        print(f"{case:<26}{c['removed']:>14}/{c['n']:<5}{c['flat']:>12}/{c['n']:<5}")
    total = {k: sum(c[k] for c in results.values()) for k in ("n", "removed", "flat")}
    print(f"{'all':<26}{total['removed']:>14}/{total['n']:<5}{total['flat']:>12}/{total['n']:<5}")
    if args.json:
        report = {"model": str(path), "seed": args.seed, "cases": results}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
