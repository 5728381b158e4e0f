"""Turning an arbitrary image into an MNIST-like 28x28 input.

MNIST digits are white ink on black, scaled so the longer side of the ink's bounding box is
20 pixels (anti-aliased), and placed in a 28x28 field so that the ink's centre of mass sits at
the centre (row 14, column 14). A digit drawn on a canvas or photographed on paper is read
correctly only when it is prepared the same way, in these steps (each a function here):

1. :func:`decode` - PNG, JPEG, ... (bytes or a path) to a grayscale float array ``(h, w)``
   in 0-255; an alpha channel is composited onto a background that contrasts with the ink;
   a pixel limit guards against decompression bombs.
2. :func:`ink_image` - ink bright on black: inverted when the background is light, the
   background level subtracted, faint noise removed; an empty image raises :class:`NoInkError`.
3. :func:`crop_to_ink` - the ink's bounding box.
4. :func:`fit_box` - scaled so the longer side is 20 pixels, keeping the aspect ratio.
5. :func:`center_by_mass` - pasted into 28x28 with its centre of mass at the centre.

:func:`mnist_like` runs all of them and returns ``uint8 (28, 28)`` pixels, the raw scale of
MNIST, so a model's own :class:`~digitnet.data.scaling.Normalizer` applies unchanged.
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
NOISE_FLOOR = 0.1  # ink below this fraction of the strongest ink is treated as background


class ImageError(DigitnetError, ValueError):
    """An image that cannot be used: unreadable, too large, or without a digit."""


class ImageTooLargeError(ImageError):
    """An image with more pixels than allowed (a decompression bomb, or just too big)."""


class NoInkError(ImageError):
    """The image is blank: nothing that stands out from the background."""


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


def ink_image(gray: np.ndarray) -> np.ndarray:
    """Grayscale ``(h, w)`` -> ink ``(h, w)`` in 0-255, bright on a zero background.

    The background level is the median of the border pixels: when it is light the image
    is inverted. The background level is then subtracted, the strongest ink stretched to
    255, and ink fainter than a tenth of that (paper texture, JPEG noise) set to zero.
    Raises :class:`NoInkError` ("no ink found") when nothing differs from the background
    by at least 32 levels.
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2 or gray.size == 0:
        raise ImageError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 127.5:
        gray = 255.0 - gray
        background = 255.0 - background
    ink = np.clip(gray - background, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise NoInkError("no ink found: the image is blank (nothing stands out from the background); "
                         "draw or photograph a digit")
    ink *= 255.0 / peak
    ink[ink < 255.0 * NOISE_FLOOR] = 0.0
    return ink


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
               formats: Sequence[str] | None = FORMATS) -> np.ndarray:
    """Any digit image -> ``uint8 (28, 28)`` like an MNIST image (white ink on black).

    ``source`` is encoded image bytes, a file path, or a grayscale array ``(h, w)`` in
    0-255 (any background). Use ``.reshape(-1)`` for the ``(784,)`` row a model takes.
    Raises :class:`ImageError` (a ``ValueError``) for anything unusable, and its subclass
    :class:`NoInkError`, whose message says "no ink found", for a blank image.
    """
    if isinstance(source, np.ndarray):
        gray = source.astype(np.float64)
        if gray.ndim != 2 or not np.all(np.isfinite(gray)):
            raise ImageError(f"expected a finite 2-D grayscale array, got shape {gray.shape}")
    else:
        gray = decode(source, max_pixels=max_pixels, formats=formats)
    box = fit_box(crop_to_ink(ink_image(gray)))
    return np.clip(np.rint(center_by_mass(box)), 0, 255).astype(np.uint8)
