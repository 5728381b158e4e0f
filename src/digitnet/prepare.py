"""From a dataset's stored splits to what training needs, as a spec's ``[data]`` table says:
validation (and test) held out, digits chosen, pixels scaled.

Images stay uint8 where the normalisation is a :class:`~digitnet.data.Normalizer` (scaled
batch by batch during training); the seeds' set-wise scalings (``minmax_batched``,
``column_zscore``) scale the whole set up front, as the seeds did. Labels become class
indices ``0..k-1``; ``classes`` keeps the original labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data.datasets import select_digits, train_valid_split
from .data.scaling import Normalizer, column_zscore, minmax_batched, stand_in
from .errors import SpecError
from .spec import DataSpec

DEFAULT_VALID_SIZE = 5000
Parts = Mapping[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class PreparedData:
    """Inputs ``(n, 784)`` (uint8, or float32 when pre-scaled) and class indices ``(n,)`` for
    each split (empty arrays where there is none), and how to scale them.

    ``train_scale`` / ``eval_scale`` scale training / validation and test batches (``None``:
    already scaled); ``normalizer`` is what the saved model applies to raw 0-255 pixels;
    ``class_names`` names each of ``classes`` (the dataset's names, or the labels as text)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[int]
    train_scale: Normalizer | None
    eval_scale: Normalizer | None
    normalizer: Normalizer
    source: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.class_names:
            self.class_names = [str(c) for c in self.classes]

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


def _empty(like: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return like[0][:0], like[1][:0]


def split(data: DataSpec, parts: Parts, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train", "valid", "test"}`` arrays from the stored parts, per ``data.split``."""
    seed = data.split_seed if data.split_seed is not None else seed
    k = data.valid_size
    if "all" in parts:  # one table (OpenML): MNIST in order, the training 6/7 first
        x, y = parts["all"]
        cut = len(x) * 6 // 7
        parts = {"train": (x[:cut], y[:cut]), "test": (x[cut:], y[cut:])} if data.split == "file" \
            else {"train": (x, y)}
    train = parts["train"]
    out = {"train": train, "valid": parts.get("valid", _empty(train)),
           "test": parts.get("test", _empty(train))}
    if data.split == "file":
        if k:
            if "valid" in parts:
                raise SpecError("data.valid_size: the file has its own validation split; leave valid_size "
                                "unset with split = 'file', or choose split = 'stratified'")
            try:
                x, y, xv, yv = train_valid_split(*train, k, shuffle=False)
            except ValueError as exc:
                raise SpecError(f"data.valid_size: {exc}") from None
            out.update(train=(x, y), valid=(xv, yv))
        return out
    pool = train if "valid" not in parts else tuple(np.concatenate(a) for a in zip(train, parts["valid"],
                                                                                    strict=True))
    k = DEFAULT_VALID_SIZE if k is None else k
    if data.split == "shuffle_head":
        x, y = pool
        n_valid = k if isinstance(k, int) else round(k * len(x))
        if n_valid >= len(x):
            raise SpecError(f"data.valid_size: {k} leaves no training data ({len(x)} images)")
        order = np.random.default_rng(seed).permutation(len(x))
        head, rest = order[:n_valid], order[n_valid:]
        out.update(train=(x[rest], y[rest]), valid=(x[head], y[head]))
        return out
    if data.test_size is not None:
        x, y = pool if "test" not in parts else tuple(np.concatenate(a) for a in zip(pool, parts["test"],
                                                                                      strict=True))
        pool_x, pool_y, tx, ty = _split_off(x, y, data.test_size, seed, "test_size")
        pool, out["test"] = (pool_x, pool_y), (tx, ty)
    if k:
        x, y, xv, yv = _split_off(*pool, k, seed, "valid_size")
        out.update(train=(x, y), valid=(xv, yv))
    else:
        out["train"] = pool
    return out


def _split_off(x: np.ndarray, y: np.ndarray, k: int | float, seed: int, key: str) -> tuple[np.ndarray, ...]:
    try:
        return train_valid_split(x, y, k, stratify=True, seed=seed)
    except ValueError as exc:
        raise SpecError(f"data.{key}: {exc}") from None


def _scale(method: str, x: np.ndarray, fitted: Normalizer | None, stat_batch: int | None) -> np.ndarray:
    """A whole set scaled by one of the seeds' set-wise methods (float32)."""
    if method == "minmax_batched":
        return minmax_batched(x, stat_batch or 100)
    if method == "column_zscore":
        return column_zscore(x)
    assert fitted is not None
    return fitted.transform(x)


def prepare(data: DataSpec, parts: Parts, *, seed: int = 0, source: dict[str, Any] | None = None
            ) -> PreparedData:
    """Split, choose digits and set up scaling for ``parts`` (uint8 images, integer labels)."""
    sets = split(data, parts, seed)
    if data.digits:
        classes = sorted(int(d) for d in data.digits)
        sets = {k: select_digits(x, y, classes) for k, (x, y) in sets.items()}
    else:
        classes = [int(c) for c in np.unique(sets["train"][1])]
        sets = {k: _indices(x, y, classes, k) for k, (x, y) in sets.items()}
    x_train = sets["train"][0]
    if len(x_train) == 0:
        raise SpecError("data: no training images left (check digits and valid_size)")
    if len(classes) < 2:
        raise SpecError(f"data: the training images hold only the classes {classes}; need at least 2")
    method = data.normalization
    eval_method = data.eval_normalization or method
    train_scale = Normalizer(method).fit(x_train) if method in Normalizer.METHODS else None
    if eval_method == method and train_scale is not None:
        eval_scale = train_scale
    else:
        eval_scale = Normalizer(eval_method).fit(x_train) if eval_method in Normalizer.METHODS else None
    normalizer = stand_in(eval_method, x_train)
    if train_scale is None:
        x_train = _scale(method, x_train, None, data.stat_batch)
    x_valid, x_test = sets["valid"][0], sets["test"][0]
    if eval_scale is None:
        x_valid = _scale(eval_method, x_valid, None, data.stat_batch) if len(x_valid) else x_valid
        x_test = _scale(eval_method, x_test, None, data.stat_batch) if len(x_test) else x_test
    names = (source or {}).get("class_names") or []
    class_names = [str(names[c]) if 0 <= c < len(names) else str(c) for c in classes]
    return PreparedData(np.ascontiguousarray(x_train), sets["train"][1], x_valid, sets["valid"][1],
                        x_test, sets["test"][1], classes, train_scale, eval_scale, normalizer, source or {},
                        class_names)


def _indices(x: np.ndarray, y: np.ndarray, classes: list[int], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels as positions in ``classes``; a label the training set lacks is an error."""
    idx = np.searchsorted(classes, y)
    known = idx < len(classes)
    known[known] = np.asarray(classes)[idx[known]] == y[known]
    if not known.all():
        raise SpecError(f"data: the {name} split has labels the training images lack: "
                        f"{sorted(set(np.asarray(y)[~known].tolist()))[:10]}")
    return x, idx.astype(np.int64)
