"""Principal component analysis in NumPy, by the singular value decomposition.

Used by the run report to project test images and hidden-layer activations to 3-D.
No scikit-learn: centre the data, take the SVD ``X - mean = U S Vt``; the rows of
``Vt`` are the principal axes, ``S**2 / (n - 1)`` the variances along them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class PCA:
    """Project ``(n, d)`` data on its first ``n_components`` principal axes.

    After :meth:`fit`: ``mean_`` (d,), ``components_`` (k, d) with orthonormal rows,
    ``explained_variance_`` (k,), ``explained_variance_ratio_`` (k,) (fraction of the
    total variance), ``singular_values_`` (k,). Each axis's sign is fixed so that its
    largest-magnitude coefficient is positive, which makes results repeatable.
    """

    def __init__(self, n_components: int = 3) -> None:
        if int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        self.n_components = int(n_components)

    def fit(self, x: Any) -> PCA:
        """Learn the axes from ``x`` (n, d); needs n >= 2 and k <= min(n, d)."""
        x = self._check(x)
        n, d = x.shape
        if n < 2:
            raise ValueError(f"PCA needs at least 2 samples, got {n}")
        k = self.n_components
        if k > min(n, d):
            raise ValueError(f"n_components={k} is more than min(n_samples={n}, n_features={d})")
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        signs[signs == 0] = 1.0
        vt *= signs[:, None]
        variance = s**2 / (n - 1)
        total = variance.sum()
        self.mean_ = mean
        self.components_ = vt[:k]
        self.singular_values_ = s[:k]
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = (variance[:k] / total if total > 0
                                          else np.zeros(k, dtype=np.float64))
        return self

    def transform(self, x: Any) -> np.ndarray:
        """Coordinates ``(n, k)`` of ``x`` (n, d) along the fitted axes."""
        if not hasattr(self, "components_"):
            raise RuntimeError("this PCA is not fitted yet: call fit(x) first")
        x = self._check(x)
        if x.shape[1] != self.mean_.shape[0]:
            raise ValueError(f"PCA was fitted on {self.mean_.shape[0]} features, got {x.shape[1]}")
        return (x - self.mean_) @ self.components_.T

    def fit_transform(self, x: Any) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same ``x`` (n, d) -> (n, k)."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: Any) -> np.ndarray:
        """Back from coordinates ``(n, k)`` to the data space ``(n, d)``."""
        return np.asarray(z, dtype=np.float64) @ self.components_ + self.mean_

    @staticmethod
    def _check(x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"PCA expects a 2-D (n_samples, n_features) array, got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"PCA expects numbers, got dtype {x.dtype}")
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("PCA input contains NaN or inf")
        return x
