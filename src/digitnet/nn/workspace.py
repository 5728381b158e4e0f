"""The one place the engine reuses memory: output arrays of matrix products in training.

A training step of a small MLP spends most of its time in a few matrix products whose
outputs have the same shape every step. Writing them into arrays kept from the previous
step (``np.matmul(..., out=...)``) saves an allocation and the page faults of touching new
memory each step; everywhere else the engine writes plain expressions. In evaluation mode
every call returns a fresh array, so forward passes never share memory and ``predict`` can
run in several threads at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Workspace:
    """Mixin for layers and losses: :meth:`reuse` hands out per-key scratch arrays."""

    training: bool = True

    def reuse(self, key: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``: in training, the same one each
        call with that key while the shape stays the same; in evaluation, a new one."""
        if not self.training:
            return np.empty(shape, dtype=dtype)
        arrays: dict[str, np.ndarray] = self.__dict__.setdefault("_workspace", {})
        array = arrays.get(key)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = arrays[key] = np.empty(shape, dtype=dtype)
        return array
