"""Shared by the image, API, browser and load tests: drawn digits, small models, a live server."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SHAPES = ("zero", "one", "seven")
SHAPE_DIGITS = {"zero": 0, "one": 1, "seven": 7}


def draw(shape: str, *, size: tuple[int, int] = (280, 280), box: tuple[float, float, float, float] = (
        0.3, 0.15, 0.7, 0.85), width: int = 20, ink: int = 0, paper: int = 255, mode: str = "L"):
    """A Pillow image of ``shape`` ("zero" ellipse, "one" vertical stroke, "seven") drawn in
    the fractional ``box`` (left, top, right, bottom) of a ``size`` canvas."""
    from PIL import Image, ImageDraw

    w, h = size
    left, top, right, bottom = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    img = Image.new("L", size, paper)
    d = ImageDraw.Draw(img)
    if shape == "zero":
        d.ellipse([left, top, right, bottom], outline=ink, width=width)
    elif shape == "one":
        x = (left + right) / 2
        d.line([(x, top), (x, bottom)], fill=ink, width=width)
    elif shape == "seven":
        d.line([(left, top), (right, top), ((left + right) / 2, bottom)], fill=ink, width=width,
               joint="curve")
    elif shape != "blank":
        raise ValueError(shape)
    return img.convert(mode) if mode != "L" else img


def encode(img, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png(shape: str, **kwargs) -> bytes:
    return encode(draw(shape, **kwargs))


def shapes_dataset(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Drawn 0/1/7 shapes of random size, place and stroke, prepared by ``mnist_like``:
    uint8 (n, 784) and their digits (n,)."""
    from digitnet.data.images import mnist_like

    rng = np.random.default_rng(seed)
    x, y = [], []
    for i in range(n):
        shape = SHAPES[i % 3]
        left, top = rng.uniform(0.05, 0.4, size=2)
        right, bottom = left + rng.uniform(0.3, 0.55), top + rng.uniform(0.4, 0.55)
        img = draw(shape, box=(left, top, right, bottom), width=int(rng.integers(8, 26)))
        x.append(mnist_like(np.asarray(img)).reshape(-1))
        y.append(SHAPE_DIGITS[shape])
    return np.stack(x), np.asarray(y)


def shapes_classifier(seed: int = 0):
    """A small network trained on :func:`shapes_dataset`: reads drawn 0, 1 and 7."""
    from digitnet.estimator import MLPClassifier

    x, y = shapes_dataset(seed=seed)
    est = MLPClassifier(hidden=(32,), epochs=15, batch_size=16, lr=3e-3, seed=seed)
    return est.fit(x, y).classifier_


@functools.lru_cache(maxsize=2)
def mnist_classifier(data_dir: str | Path, epochs: int = 2, seed: int = 0):
    """A 784-128-10 network trained for a couple of seconds on the real MNIST (once per
    test session; callers only read it)."""
    from digitnet.data import load_mnist
    from digitnet.estimator import MLPClassifier

    ds = load_mnist(data_dir)
    est = MLPClassifier(hidden=(128,), epochs=epochs, lr=2e-3, seed=seed)
    return est.fit(ds.x_train, ds.y_train).classifier_


@contextlib.contextmanager
def serving(model: Path, *extra: str, timeout: float = 60.0) -> Iterator[str]:
    """Run ``digitnet serve MODEL --port 0`` (a free loopback port, chosen by the system);
    yield its base URL, read from the line it prints, once it answers ``GET /api/model``;
    stop it afterwards."""
    import httpx

    log = model.parent / f"serve-{os.getpid()}-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "digitnet.cli", "serve", str(model),
                                 "--port", "0", *extra], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        url = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"digitnet serve exited with {proc.returncode}: {log.read_text()}")
            if url is None:
                found = re.search(r"serving .* at (http://127\.0\.0\.1:\d+)/", log.read_text())
                url = found.group(1) if found else None
            if url is not None:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url + "/api/model", timeout=2).status_code == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"digitnet serve did not answer within {timeout} s: {log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@functools.lru_cache(maxsize=1)
def mnist_cnn_classifier(data_dir: str | Path, n_train: int = 12000, seed: int = 0):
    """A small CNN (8 and 16 3x3 maps with batch norm, 32 dense units) trained for one epoch on
    the first ``n_train`` real MNIST images (once per test session; callers only read it)."""
    from digitnet.classifier import train_classifier
    from digitnet.data import load_mnist
    from digitnet.prepare import prepare
    from digitnet.spec import RunSpec

    ds = load_mnist(data_dir)
    layers = ({"type": "Conv2D", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False},
              {"type": "BatchNorm"}, {"type": "ReLU"}, {"type": "MaxPool2D", "kernel_size": 2},
              {"type": "Conv2D", "out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False},
              {"type": "BatchNorm"}, {"type": "ReLU"}, {"type": "MaxPool2D", "kernel_size": 2},
              {"type": "Flatten"}, {"type": "Linear", "out_features": 32}, {"type": "ReLU"},
              {"type": "Linear"})
    spec = RunSpec().replace(layers=layers, epochs=1, lr=3e-3, seed=seed, valid_size=0)
    data = prepare(spec.data, {"train": (ds.x_train[:n_train], ds.y_train[:n_train])}, seed=seed)
    return train_classifier(spec, data, progress=False)[0]
