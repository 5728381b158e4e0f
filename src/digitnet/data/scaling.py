"""Pixel normalisations, fitted on the training set and applied batch by batch.

Images stay uint8 in memory; each minibatch is turned into floats by
:meth:`Normalizer.transform`, ideally into one reused float32 buffer (``out=``), so the
training loop allocates nothing per batch. Every method is ``(x - shift) * scale`` with
scalar or per-pixel (d,) ``shift``/``scale``, computed once and cached per dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Normalizer", "NORMALIZATIONS", "minmax_batched", "column_zscore", "stand_in"]

_CHUNK_ROWS = 8192  # rows per chunk when computing statistics (bounds float64 temporaries)


def _column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and (population) std of x (n, d) in float64, two-pass, chunked."""
    n = x.shape[0]
    total = np.zeros(x.shape[1], dtype=np.float64)
    for i in range(0, n, _CHUNK_ROWS):
        total += x[i : i + _CHUNK_ROWS].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(x.shape[1], dtype=np.float64)
    for i in range(0, n, _CHUNK_ROWS):
        dev = x[i : i + _CHUNK_ROWS].astype(np.float64) - mean
        sq += np.einsum("ij,ij->j", dev, dev)
    return mean, np.sqrt(sq / n)


class Normalizer:
    """Scale pixel arrays (n, d) to floats with one of :attr:`METHODS`.

    - ``unit``: x / 255, in [0, 1].
    - ``unit256``: x / 256, the scale of the classic ``mnist.pkl.gz`` (seed 000's data).
    - ``symmetric``: x / 127.5 - 1, in [-1, 1].
    - ``zscore``: (x - mean) / std with *training* statistics: one global scalar mean and
      std by default; with ``per_pixel=True`` one per pixel, each std floored at
      ``std_floor`` (default: a tenth of the global std) so that pixels that are constant
      in training (MNIST's borders) do not divide by ~0 and blow up on test images.
    - ``minmax``: per pixel (x - min) / (max - min); constant pixels are divided by 1.
    - ``none``: a float cast only.
    """

    METHODS = ("unit", "unit256", "symmetric", "zscore", "minmax", "none")
    _NEEDS_FIT = ("zscore", "minmax")

    def __init__(
        self, method: str = "unit", *, per_pixel: bool = False, std_floor: float | None = None
    ) -> None:
        if method not in self.METHODS:
            raise ValueError(
                f"unknown normalisation {method!r}; choose one of {', '.join(self.METHODS)}"
            )
        if std_floor is not None and not std_floor > 0:
            raise ValueError(f"std_floor must be positive, got {std_floor}")
        self.method = method
        self.per_pixel = bool(per_pixel)
        self.std_floor = std_floor
        self.n_features: int | None = None
        # Statistics (float64; scalars for global zscore, (d,) arrays otherwise).
        self.mean: float | np.ndarray | None = None
        self.std: float | np.ndarray | None = None  # effective std (after the floor)
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None
        self._cache: dict[np.dtype, tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        extra = ", per_pixel=True" if self.per_pixel and self.method == "zscore" else ""
        return f"Normalizer({self.method!r}{extra}, n_features={self.n_features})"

    @property
    def fitted(self) -> bool:
        """Whether the statistics this method needs are present."""
        if self.method == "zscore":
            return self.mean is not None and self.std is not None
        if self.method == "minmax":
            return self.min is not None and self.max is not None
        return True

    def fit(self, x: np.ndarray) -> Normalizer:
        """Learn the statistics from training data x (n, d), uint8 or float; returns self."""
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"fit expects a 2-D array (n, d), got shape {x.shape}")
        if x.shape[0] == 0 and self.method in self._NEEDS_FIT:
            raise ValueError(f"cannot fit {self.method!r} statistics on zero samples")
        self.n_features = int(x.shape[1])
        self._cache.clear()
        if self.method == "zscore":
            mean, std = _column_stats(x)
            # Global moments from the per-pixel ones (equal counts: law of total variance).
            g_mean = float(mean.mean())
            g_std = float(np.sqrt(np.mean(std**2 + (mean - g_mean) ** 2)))
            if self.per_pixel:
                floor = self.std_floor if self.std_floor else (0.1 * g_std or 1.0)
                self.mean, self.std = mean, np.maximum(std, floor)
            else:
                g_std = g_std if g_std > 0 else 1.0  # constant data: shift only
                self.mean, self.std = g_mean, max(g_std, self.std_floor or 0.0)
        elif self.method == "minmax":
            self.min = x.min(axis=0).astype(np.float64)
            self.max = x.max(axis=0).astype(np.float64)
        return self

    def _params(self, dtype: np.dtype) -> tuple[Any, Any]:
        """(shift or None, scale or None) in ``dtype``, cached: x -> (x - shift) * scale."""
        params = self._cache.get(dtype)
        if params is None:
            if self.method == "unit":
                shift, scale = None, 1.0 / 255.0
            elif self.method == "unit256":
                shift, scale = None, 1.0 / 256.0
            elif self.method == "symmetric":
                shift, scale = 127.5, 1.0 / 127.5
            elif self.method == "zscore":
                shift, scale = self.mean, 1.0 / np.asarray(self.std, dtype=np.float64)
            elif self.method == "minmax":
                span = self.max - self.min
                shift, scale = self.min, 1.0 / np.where(span == 0, 1.0, span)
            else:
                shift, scale = None, None
            params = tuple(
                None if p is None else np.asarray(p, dtype=dtype) for p in (shift, scale)
            )
            self._cache[dtype] = params
        return params

    def affine(self, dtype: Any = np.float32) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(shift, scale)`` in ``dtype`` (either None where the method has none): what
        :meth:`transform` computes is ``(x - shift) * scale``, with these very constants
        (an exporter writes them into its graph)."""
        if not self.fitted:
            raise RuntimeError(f"Normalizer({self.method!r}) is not fitted: call fit() first")
        return self._params(np.dtype(dtype))

    def transform(
        self, x: np.ndarray, out: np.ndarray | None = None, dtype: Any = np.float32
    ) -> np.ndarray:
        """Normalise x (n, d) into a float array of the same shape.

        With ``out`` (a float array of x's shape, e.g. a reused float32 batch buffer) the
        result is written there and ``out`` itself is returned; ``dtype`` is then ignored.
        The work is one or two ufunc calls with ``out=``, no temporaries.
        """
        x = np.asarray(x)
        if not self.fitted:
            raise RuntimeError(f"Normalizer({self.method!r}) is not fitted: call fit() first")
        if self.n_features is not None and (x.ndim == 0 or x.shape[-1] != self.n_features):
            raise ValueError(
                f"expected arrays with {self.n_features} features (last axis), got {x.shape}"
            )
        if out is None:
            dt = np.dtype(dtype)
            if dt.kind != "f":
                raise ValueError(f"dtype must be a floating type, got {dt}")
            out = np.empty(x.shape, dtype=dt)
        elif out.shape != x.shape or out.dtype.kind != "f":
            raise ValueError(
                f"out must be a float array of shape {x.shape}, got {out.dtype} {out.shape}"
            )
        shift, scale = self._params(out.dtype)
        if shift is not None:
            np.subtract(x, shift, out=out, dtype=out.dtype)
            np.multiply(out, scale, out=out)
        elif scale is not None:
            np.multiply(x, scale, out=out, dtype=out.dtype)
        else:
            np.copyto(out, x, casting="same_kind" if x.dtype.kind == "f" else "safe")
        return out

    def fit_transform(self, x: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x, dtype=dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: method, per_pixel, n_features and the statistics."""
        d: dict[str, Any] = {
            "method": self.method,
            "per_pixel": self.per_pixel,
            "n_features": self.n_features,
        }
        if self.std_floor is not None:
            d["std_floor"] = float(self.std_floor)

        def plain(v: float | np.ndarray | None) -> Any:
            return None if v is None else np.asarray(v, dtype=np.float64).tolist()

        if self.method == "zscore":
            d["mean"], d["std"] = plain(self.mean), plain(self.std)
        elif self.method == "minmax":
            d["min"], d["max"] = plain(self.min), plain(self.max)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Rebuild a fitted Normalizer from :meth:`to_dict` output (validates shapes)."""
        norm = cls(d["method"], per_pixel=d.get("per_pixel", False), std_floor=d.get("std_floor"))
        n = d.get("n_features")
        norm.n_features = None if n is None else int(n)

        def stat(key: str, per_feature: bool) -> Any:
            v = d.get(key)
            if v is None:
                return None
            if not per_feature:
                return float(v)
            arr = np.asarray(v, dtype=np.float64)
            if arr.ndim != 1 or (norm.n_features is not None and arr.size != norm.n_features):
                raise ValueError(
                    f"normalizer {key!r} must have {norm.n_features} values, got {arr.shape}"
                )
            return arr

        if norm.method == "zscore":
            norm.mean, norm.std = stat("mean", norm.per_pixel), stat("std", norm.per_pixel)
            if norm.std is not None and np.any(np.asarray(norm.std) <= 0):
                raise ValueError("normalizer 'std' must be positive")
        elif norm.method == "minmax":
            norm.min, norm.max = stat("min", True), stat("max", True)
        return norm


# --------------------------------------------------------------------------- the seeds' own
def minmax_batched(x: np.ndarray, batch: int) -> np.ndarray:
    """Seed 001's scaling: min-max statistics per (position in batch, pixel), not per pixel.

    ``x`` (n, d) -> float32 (n, d); a ragged last batch uses the first positions' statistics.
    """
    n = len(x) - len(x) % batch
    xb = x[:n].astype(np.float32).reshape(-1, batch, x.shape[1])
    lo, hi = xb.min(axis=0), xb.max(axis=0)
    span = np.where(hi - lo == 0, 1, hi - lo)
    out = ((xb - lo) / span).reshape(n, -1)
    if n < len(x):
        tail = (x[n:].astype(np.float32) - lo[: len(x) - n]) / span[: len(x) - n]
        out = np.concatenate([out, tail])
    return out


def _column_stats28(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = x.reshape(-1, 28, 28).astype(np.float32)
    return img.mean(axis=(0, 1)), img.std(axis=(0, 1))


def column_zscore(x: np.ndarray) -> np.ndarray:
    """Seed 003's scaling: mean and std over axis (0, 1) of the (n, 28, 28) array, i.e. one
    statistic per image column, computed on whatever set is being scaled. float32 (n, 784)."""
    mean, std = _column_stats28(x)
    img = (x.reshape(-1, 28, 28).astype(np.float32) - mean) / np.where(std == 0, 1, std)
    return img.reshape(len(x), -1)


#: Every normalisation a run spec may name: the Normalizer's methods, then the seeds' own,
#: which scale a whole set at once (their statistics depend on the set).
NORMALIZATIONS: tuple[str, ...] = (*Normalizer.METHODS, "minmax_batched", "column_zscore")


def stand_in(method: str, x_train: np.ndarray) -> Normalizer:
    """The :class:`Normalizer` a saved model uses for ``method``, fitted on ``x_train``
    (n, 784): the method itself, or for the seeds' set-wise scalings the nearest per-image
    one (``column_zscore``: the training set's column statistics as a per-pixel z-score;
    ``minmax_batched``: per-pixel min-max)."""
    if method in Normalizer.METHODS:
        return Normalizer(method).fit(x_train)
    if method == "minmax_batched":
        return Normalizer("minmax").fit(x_train)
    if method != "column_zscore":
        raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALIZATIONS)}")
    mean, std = _column_stats28(x_train)
    norm = Normalizer("zscore", per_pixel=True)
    norm.n_features = 784
    norm.mean = np.tile(mean.astype(np.float64), 28)
    norm.std = np.tile(np.where(std == 0, 1, std).astype(np.float64), 28)
    return norm
