"""Turning an arbitrary image into an MNIST-like 28x28 input.

MNIST digits are white ink on black, scaled so the longer side of the ink's bounding box is
20 pixels (anti-aliased), and placed in a 28x28 field so that the ink's centre of mass sits at
the centre (row 14, column 14). A digit drawn on a canvas or photographed on paper is read
correctly only when it is prepared the same way, in these steps (each a function here):

1. :func:`decode` - PNG, JPEG, ... (bytes or a path) to a grayscale float array ``(h, w)``
   in 0-255; an alpha channel is composited onto a background that contrasts with the ink;
   a pixel limit guards against decompression bombs.
2. :func:`ink_image` - the digit's strokes, 255 on 0, found in a photo as in a drawing:

   a. :func:`bright_ink` - inverted when the ink is darker than the paper;
   b. :func:`estimate_background` - the paper, its uneven light and shadows, estimated at a
      scale larger than the strokes, and subtracted (off with ``remove_background=False``);
   c. :func:`otsu_threshold` - ink is what stands out from what is left, by Otsu's method;
   d. :func:`digit_strokes` - the digit's connected strokes, without specks and shadows' rims.

   An empty image raises :class:`NoInkError`.
3. :func:`crop_to_ink` - the ink's bounding box.
4. :func:`fit_box` - scaled so the longer side is 20 pixels, keeping the aspect ratio.
5. :func:`center_by_mass` - pasted into 28x28 with its centre of mass at the centre.

:func:`mnist_like` runs all of them and returns ``uint8 (28, 28)`` pixels, the raw scale of
MNIST, so a model's own :class:`~digitnet.data.scaling.Normalizer` applies unchanged. Pillow
decodes and scales; ``scipy.ndimage`` filters, labels and measures (imported only inside
the functions that use it, so ``import digitnet.data`` needs neither).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DigitnetError

__all__ = [
    "ImageError",
    "NoInkError",
    "ImageTooLargeError",
    "MAX_PIXELS",
    "FORMATS",
    "decode",
    "bright_ink",
    "estimate_background",
    "otsu_threshold",
    "digit_strokes",
    "stroke_width",
    "ink_image",
    "crop_to_ink",
    "fit_box",
    "center_by_mass",
    "mnist_like",
]

MAX_PIXELS = 40_000_000
"""Default limit on width x height (a 12-megapixel phone photo is fine; bombs are not)."""

FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
"""Pillow decoders tried by default; other (rarer) decoders are never reached."""

FIELD = 28  # side of the MNIST image
BOX = 20  # side of the box the ink is scaled into
CENTER = 14.0  # where MNIST puts the centre of mass (row and column, 0-based)
WORKING_SIDE = 1024  # larger images are reduced to this before array work
MIN_CONTRAST = 32.0  # ink must differ from the background by this much (of 255)
BACKGROUND_WINDOW = 0.2  # the background is estimated over squares this fraction of the longer side
EDGE_GIVES_WAY = 0.5  # an inner component this fraction of an edge-touching one's size is the digit
MIN_PART = 0.05  # smaller components (of the digit's size) are specks
REACH = 0.25  # parts of the digit lie within this fraction of its longer side
MIN_DIGIT = 0.02  # a digit spans at least this fraction of the image's longer side
STROKE_WINDOWS = 2.5  # the background window is at least this many stroke widths
BACKGROUND_PASSES = 3  # at most this many background estimates, each with a wider window


class ImageError(DigitnetError, ValueError):
    """An image that cannot be used: unreadable, too large, or without a digit."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than allowed (a decompression bomb, or just too big)."""


class NoInkError(ImageError):
    """The image is blank: nothing that stands out from the background."""


def _ndimage():
    """``scipy.ndimage``, imported when an image is prepared (not with ``digitnet.data``)."""
    try:
        from scipy import ndimage
    except ImportError:
        raise DigitnetError("preparing images needs scipy, which is not installed: "
                            "pip install 'digitnet[images]'") from None
    return ndimage


def _open(source: bytes | str | Path, formats: Sequence[str] | None):
    from PIL import Image, UnidentifiedImageError

    name = "image" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError("the image is empty (0 bytes)")
        fp = io.BytesIO(bytes(source))
    else:
        fp = Path(source)
        if fp.is_dir():
            raise ImageError(f"{fp}: is a directory, not an image file")
        if not fp.is_file():
            raise ImageError(f"{fp}: no such file")
        if fp.stat().st_size == 0:
            raise ImageError(f"{fp}: the file is empty (0 bytes)")
    try:
        return Image.open(fp, formats=list(formats) if formats else None)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: too many pixels ({exc})") from None
    except UnidentifiedImageError:
        allowed = ", ".join(formats) if formats else "a format Pillow knows"
        raise ImageError(f"{name}: not an image that can be read (expected {allowed})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: cannot read the image ({exc})") from None


def decode(source: bytes | str | Path, *, max_pixels: int = MAX_PIXELS,
           formats: Sequence[str] | None = FORMATS) -> np.ndarray:
    """Image bytes or a file path -> grayscale ``float64 (h, w)`` in 0-255.

    Checks ``width * height <= max_pixels`` from the header, before any pixel is decoded.
    Transparent pixels are composited onto white when the visible ink is dark and onto
    black when it is light, so a canvas export (ink on a transparent background) keeps
    its ink either way. Images larger than 1024 pixels on a side are reduced first
    (box filter); the result is later scaled to 20 pixels anyway.
    """
    from PIL import Image, ImageOps

    name = "image" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    img = _open(source, formats)
    try:
        w, h = img.size
        if w * h > max_pixels:
            raise ImageTooLargeError(f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of "
                             f"{max_pixels:,}; scale the image down first")
        if w == 0 or h == 0:
            raise ImageError(f"{name}: the image has no pixels ({w}x{h})")
        try:
            if img.format == "JPEG":
                img.draft("L", (WORKING_SIDE, WORKING_SIDE))  # decode at reduced size: cheap
            img = ImageOps.exif_transpose(img)  # photos taken sideways
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16/32-bit gray
                gray = np.asarray(img, dtype=np.float64)
                top = 65535.0 if img.mode.startswith("I;16") else max(float(gray.max()), 255.0)
                with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf: refused below
                    img = Image.fromarray((gray * (255.0 / top)).astype(np.float32), mode="F")
            elif img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
                img = img.convert("RGBA").convert("LA")
            else:
                img = img.convert("L")
            if max(img.size) > WORKING_SIDE:
                scale = WORKING_SIDE / max(img.size)
                size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                img = img.resize(size, Image.Resampling.BOX)
            arr = np.asarray(img, dtype=np.float64)
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{name}: too many pixels ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name}: cannot decode the image ({exc})") from None
    finally:
        img.close()
    if not np.isfinite(arr).all():  # float (mode F) TIFFs can hold them
        raise ImageError(f"{name}: the image holds NaN or infinite pixel values")
    gray, alpha = (arr[..., 0], arr[..., 1] / 255.0) if arr.ndim == 3 else (arr, None)
    if alpha is not None and np.any(alpha < 1.0):
        seen = alpha.sum()
        if seen == 0:
            raise NoInkError(f"{name}: no ink found (the image is fully transparent)")
        ink_level = float((gray * alpha).sum() / seen)
        background = 255.0 if ink_level < 128.0 else 0.0
        gray = gray * alpha + background * (1.0 - alpha)
    return np.clip(gray, 0.0, 255.0)


def bright_ink(gray: np.ndarray) -> np.ndarray:
    """Grayscale ``(h, w)`` -> ``float64 (h, w)`` with the ink brighter than the paper.

    The paper's level is the median of the border pixels (a digit rarely fills the edge of
    its picture); the ink is the tail of the pixel values that reaches further from it.
    The image is inverted when that tail is the dark one (pen on paper), left alone when
    it is the bright one (a light-on-dark canvas). The tails are the 0.1 and 99.9
    percentiles, so a few stray pixels do not decide, and a shaded or unevenly lit page
    (whose lit paper is still brighter than its ink) is still seen as pen on paper.
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    paper = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    low, high = np.percentile(gray, [0.1, 99.9])
    dark, light = paper - low, high - paper
    return 255.0 - gray if (dark > light if dark != light else paper > 127.5) else gray.copy()


def estimate_background(bright: np.ndarray, *, window: int | None = None) -> np.ndarray:
    """The paper under the ink of ``bright (h, w)`` (ink bright), estimated at a large scale.

    A grey opening (a minimum filter, then a maximum filter, over a square ``window``
    pixels wide; default a fifth of the longer side) erases everything narrower than the
    window - the strokes - and keeps what is broader: the paper's level, a light gradient
    across it, a shadow band. Ramps, and steps between regions wider than the window, come
    through exactly, so subtracting the estimate leaves no ghost line along a shadow's
    edge. Returns ``float64 (h, w)``, nowhere above ``bright``. ``scipy.ndimage`` does the
    filtering: its running minimum and maximum cost the same for any window, where a
    NumPy sliding window grows with its area (a 200-pixel window on a 1024-pixel photo
    takes about 0.2 s).
    """
    ndimage = _ndimage()
    bright = np.asarray(bright, dtype=np.float64)
    if window is None:
        window = max(3, round(max(bright.shape) * BACKGROUND_WINDOW))
    if window < 1:
        raise ValueError(f"window must be at least 1 pixel, got {window}")
    return ndimage.grey_opening(bright, size=(window, window), mode="nearest")


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (any shape): the level that splits them into two
    classes with the largest between-class variance (the smallest spread within each).
    Values above it are ink. When the classes are apart, every split in the gap is as
    good; the middle one is taken. A 256-bin histogram and a few lines of NumPy, so no
    image library is needed for it."""
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    step = (high - low) / bins
    counts = np.bincount(np.minimum(((values - low) / step).astype(np.intp), bins - 1), minlength=bins)
    centers = low + step * (np.arange(bins) + 0.5)
    w0 = np.cumsum(counts)[:-1].astype(np.float64)  # values at or below each of the bins - 1 splits
    w1 = len(values) - w0
    s0 = np.cumsum(counts * centers)[:-1]
    mean0 = s0 / np.maximum(w0, 1)
    mean1 = (float((counts * centers).sum()) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (mean0 - mean1) ** 2
    best = np.flatnonzero(between >= between.max() * (1 - 1e-12))  # a run of splits over empty bins
    return float(low + step * ((best[0] + best[-1]) / 2 + 1))


def digit_strokes(mask: np.ndarray) -> np.ndarray:
    """The digit's connected strokes in a boolean ink ``mask (h, w)``, with specks and
    frame clutter dropped. Returns a boolean ``(h, w)``.

    The mask is split into 8-connected components (``scipy.ndimage.label``: labelling in
    C, linear in the pixels, where a flood fill in Python takes seconds on a photo). The
    digit starts from the largest component; one touching the image's edge (a shadow's
    rim, the paper's edge, the table) gives way to the largest one inside the frame when
    that is at least half its size, so a canvas digit drawn up to the edge still wins
    against a stray mark. Then every component at least 5% of the digit's size and
    within a quarter of its longer side joins it (a 5 whose bar was drawn apart, a stroke
    broken by a faint pen), repeatedly, as the digit grows; smaller or farther ones
    (dust, paper texture, another mark) are dropped. Raises :class:`NoInkError` when
    what is left spans less than 2% of the image: specks only, no digit.
    """
    ndimage = _ndimage()
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        raise NoInkError("no ink found: the image is blank (nothing stands out from the background)")
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    boxes = np.array([(r.start, c.start, r.stop, c.stop) for r, c in ndimage.find_objects(labels)])
    rim = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    on_edge = np.zeros(n, dtype=bool)
    on_edge[np.unique(rim[rim > 0]) - 1] = True
    main = int(np.argmax(sizes))
    if on_edge[main] and not on_edge.all():
        inner = int(np.flatnonzero(~on_edge)[np.argmax(sizes[~on_edge])])
        if sizes[inner] >= EDGE_GIVES_WAY * sizes[main]:
            main = inner
    keep = np.zeros(n, dtype=bool)
    keep[main] = True
    joinable = (sizes >= MIN_PART * sizes[main]) & (on_edge <= on_edge[main])  # edge only if main is
    box = boxes[main]
    while True:
        reach = REACH * max(box[2] - box[0], box[3] - box[1])
        gap = np.maximum(np.maximum(boxes[:, :2] - box[2:], box[:2] - boxes[:, 2:]), 0).max(axis=1)
        near = joinable & ~keep & (gap <= reach)
        if not near.any():
            break
        keep |= near
        box = np.concatenate([np.minimum(box[:2], boxes[near, :2].min(0)),
                              np.maximum(box[2:], boxes[near, 2:].max(0))])
    if max(box[2] - box[0], box[3] - box[1]) < MIN_DIGIT * max(mask.shape):
        raise NoInkError("no ink found: only specks, nothing the size of a digit")
    return np.concatenate([[False], keep])[labels]


def stroke_width(strokes: np.ndarray) -> float:
    """The typical width in pixels of the strokes in a boolean ``strokes (h, w)``.

    Across a stroke ``w`` pixels wide the distances of its pixels to the nearest paper
    pixel spread evenly over 1 to ``w / 2``, so ``w`` is four times their mean less two
    (``scipy.ndimage.distance_transform_edt``, an exact Euclidean distance transform;
    where strokes cross or blot the mean is higher, and the width errs on the wide side).
    Measured on the ink's bounding box, reduced to at most 256 pixels a side by
    max-pooling (any ink in a block counts), which can only make strokes look wider.
    """
    ndimage = _ndimage()
    rows, cols = np.flatnonzero(strokes.any(axis=1)), np.flatnonzero(strokes.any(axis=0))
    if rows.size == 0:
        return 0.0
    box = strokes[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    k = -(-max(box.shape) // 256)
    h, w = -(-box.shape[0] // k) * k, -(-box.shape[1] // k) * k
    padded = np.zeros((h, w), dtype=bool)
    padded[: box.shape[0], : box.shape[1]] = box
    small = padded.reshape(h // k, k, w // k, k).any(axis=(1, 3))
    distance = ndimage.distance_transform_edt(np.pad(small, 1))[1:-1, 1:-1]
    return max(1.0, 4.0 * float(distance[small].mean()) - 2.0) * k


def ink_image(gray: np.ndarray, *, remove_background: bool = True) -> np.ndarray:
    """Grayscale ``(h, w)`` -> ink ``float64 (h, w)``: 255 on the digit's strokes, 0 elsewhere.

    :func:`bright_ink` turns the ink bright; :func:`estimate_background` is subtracted;
    :func:`otsu_threshold` on what is left separates ink from paper; :func:`digit_strokes`
    keeps the digit. The background window must be at least 2.5 stroke widths (the
    stroke, whose width is measured where it is half dark, and its blurred edges): when
    the strokes found (:func:`stroke_width`) are too wide for the window, as in a tight
    crop of a digit or a thick marker, this is done again with a window that wide (at most
    three passes in all). A shadow band narrower than the window is taken for ink: at
    this scale a thick stroke and a narrow shadow look alike.
    ``remove_background=False`` subtracts one flat level instead (the median of the border
    pixels, as this step did before it knew about photos), to show what the estimate is for.

    The ink is binary, as on the NIST forms MNIST was made from: MNIST's grey levels are
    the anti-aliasing of the later scaling (:func:`fit_box`), not the pen's pressure.
    Raises :class:`NoInkError` ("no ink found") when the digit's strokes (their median
    pixel) do not differ from the background by at least 32 levels, or only specks do.
    """
    bright = bright_ink(gray)
    if not remove_background:
        border = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]])
        return _strokes(bright - float(np.median(border)))
    window = max(3, round(max(bright.shape) * BACKGROUND_WINDOW))
    strokes = _strokes(bright - estimate_background(bright, window=window))
    for _ in range(BACKGROUND_PASSES - 1):
        wanted = min(max(bright.shape), int(np.ceil(STROKE_WINDOWS * stroke_width(strokes))))
        if wanted <= window:
            break
        strokes, window = _strokes(bright - estimate_background(bright, window=wanted)), wanted
    return strokes


def _strokes(residual: np.ndarray) -> np.ndarray:
    """Ink above the background ``residual (h, w)`` -> 0/255 digit strokes."""
    residual = np.clip(residual, 0.0, None)
    if float(residual.max()) < MIN_CONTRAST:
        raise NoInkError("no ink found: the image is blank (nothing stands out from the background); "
                         "draw or photograph a digit")
    strokes = digit_strokes(residual > max(otsu_threshold(residual), MIN_CONTRAST / 2))
    if float(np.median(residual[strokes])) < MIN_CONTRAST:  # the tail of the paper's grain
        raise NoInkError("no ink found: nothing stands out from the paper but its grain; "
                         "draw or photograph a digit")
    return np.where(strokes, 255.0, 0.0)


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest box ``(h', w')`` holding every non-zero pixel of ``ink (h, w)``."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise NoInkError("no ink found: the image is blank")
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def fit_box(ink: np.ndarray, size: int = BOX) -> np.ndarray:
    """Scale ``ink (h, w)`` so its longer side is ``size``, keeping the aspect ratio.

    Anti-aliased (Lanczos when enlarging, area-averaging when reducing); the strongest
    pixel is stretched back to 255 so that thin strokes stay as bright as MNIST's.
    Returns ``float64 (h'', w'')`` with ``max(h'', w'') == size``.
    """
    from PIL import Image

    h, w = ink.shape
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.LANCZOS
    img = Image.fromarray(ink.astype(np.float32), mode="F").resize((new_w, new_h), resample)
    out = np.clip(np.asarray(img, dtype=np.float64), 0.0, None)
    peak = out.max()
    if peak > 0:
        out *= 255.0 / peak
    return out


def center_by_mass(box: np.ndarray, field: int = FIELD, center: float = CENTER) -> np.ndarray:
    """Paste ``box (h, w)`` (each side <= ``field``) into a ``(field, field)`` zero image so
    the ink's centre of mass lands on ``(center, center)``, shifted by whole pixels and
    never pushed past the edge."""
    h, w = box.shape
    if h > field or w > field:
        raise ValueError(f"box {box.shape} does not fit in {field}x{field}")
    total = box.sum()
    if total <= 0:
        raise NoInkError("no ink found: the image is blank")
    cy = float((box.sum(axis=1) * np.arange(h)).sum() / total)
    cx = float((box.sum(axis=0) * np.arange(w)).sum() / total)
    top = int(np.clip(round(center - cy), 0, field - h))
    left = int(np.clip(round(center - cx), 0, field - w))
    out = np.zeros((field, field), dtype=np.float64)
    out[top : top + h, left : left + w] = box
    return out


def mnist_like(source: bytes | str | Path | np.ndarray, *, max_pixels: int = MAX_PIXELS,
               formats: Sequence[str] | None = FORMATS, remove_background: bool = True) -> np.ndarray:
    """Any digit image -> ``uint8 (28, 28)`` like an MNIST image (white ink on black).

    ``source`` is encoded image bytes, a file path, or a grayscale array ``(h, w)`` in
    0-255 (any background). Use ``.reshape(-1)`` for the ``(784,)`` row a model takes.
    Raises :class:`ImageError` (a ``ValueError``) for anything unusable, and its subclass
    :class:`NoInkError`, whose message says "no ink found", for a blank image.
    ``remove_background=False`` subtracts one flat paper level instead of the estimated
    background (see :func:`ink_image`): only to show what the estimate is for.
    """
    if isinstance(source, np.ndarray):
        gray = source.astype(np.float64)
        if gray.ndim != 2 or not np.all(np.isfinite(gray)):
            raise ImageError(f"expected a finite 2-D grayscale array, got shape {gray.shape}")
    else:
        gray = decode(source, max_pixels=max_pixels, formats=formats)
    box = fit_box(crop_to_ink(ink_image(gray, remove_background=remove_background)))
    return np.clip(np.rint(center_by_mass(box)), 0, 255).astype(np.uint8)
