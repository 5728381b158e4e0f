"""Shared fixtures: small synthetic digit-like data, and the real MNIST when available."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def mnist_dir() -> Path | None:
    value = os.environ.get("DIGITNET_DATA")
    return Path(value) if value else None


requires_mnist = pytest.mark.skipif(
    mnist_dir() is None, reason="real MNIST not available: set DIGITNET_DATA to its directory"
)


def make_blobs(n: int = 300, n_classes: int = 3, d: int = 784, seed: int = 0):
    """Class-separable 'images': uint8 (n, d) with a bright class-specific band, labels (n,)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(n, d)).astype(np.uint8)
    band = d // n_classes
    for c in range(n_classes):
        rows = y == c
        x[np.ix_(rows, np.arange(c * band, (c + 1) * band))] += 150
    return x, y.astype(np.int64)


@pytest.fixture
def blobs():
    return make_blobs()


def save_small_model(path, x, y, *, hidden=8, epochs=2, seed=0):
    """Train a small MLP on ``(x, y)`` with the engine alone (no scikit-learn) and save it as a
    model file; returns the path."""
    from digitnet.classifier import Classifier
    from digitnet.data import Normalizer
    from digitnet.nn import Adam, SoftmaxCrossEntropy, mlp
    from digitnet.train import fit

    classes = sorted({int(c) for c in y})
    norm = Normalizer("unit").fit(x)
    model = mlp([x.shape[1], hidden, len(classes)], rng=seed)
    fit(model, SoftmaxCrossEntropy(), Adam(0.01), x, np.searchsorted(classes, y), epochs=epochs,
        batch_size=50, preprocess=norm, seed=seed, progress=False)
    return Classifier(model.eval(), SoftmaxCrossEntropy(), norm, classes).save(path)
