"""Normalizer: each method's values, the out= hot path, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitnet.data import Normalizer


@pytest.fixture
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 20), dtype=np.uint8)
    x[:, 0] = 0  # a constant pixel, like MNIST's borders
    x[:, 1] = 200  # another constant, non-zero
    x[0, 2], x[1, 2] = 0, 255
    return x


def test_unit(x: np.ndarray) -> None:
    out = Normalizer("unit").fit(x).transform(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, x / 255.0, rtol=1e-6)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_symmetric(x: np.ndarray) -> None:
    out = Normalizer("symmetric").transform(x)  # needs no fit
    np.testing.assert_allclose(out, x / 127.5 - 1, atol=1e-6)
    assert out[0, 2] == -1.0 and out[1, 2] == 1.0


def test_zscore_global(x: np.ndarray) -> None:
    n = Normalizer("zscore").fit(x)
    assert isinstance(n.mean, float) and isinstance(n.std, float)
    np.testing.assert_allclose(n.mean, x.mean())
    np.testing.assert_allclose(n.std, x.std())
    out = n.transform(x)
    np.testing.assert_allclose(out, (x - x.mean()) / x.std(), atol=1e-5)
    assert abs(float(out.mean())) < 1e-5 and abs(float(out.std()) - 1) < 1e-5
    # test data uses the training statistics, not its own
    other = np.full((2, 20), 10, dtype=np.uint8)
    np.testing.assert_allclose(n.transform(other), (10 - x.mean()) / x.std(), rtol=1e-5)


def test_zscore_per_pixel(x: np.ndarray) -> None:
    n = Normalizer("zscore", per_pixel=True).fit(x)
    assert n.mean.shape == (20,) and n.std.shape == (20,)
    out = n.transform(x)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, 3:].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, 3:].std(axis=0), 1, atol=1e-4)
    # constant pixels: std floored (a tenth of the global std), not ~0
    assert n.std[0] == pytest.approx(0.1 * x.std(), rel=1e-6)
    test = np.full((1, 20), 255, dtype=np.uint8)
    assert np.abs(n.transform(test)).max() < 255 / (0.1 * x.std()) + 1e-3
    assert Normalizer("zscore", per_pixel=True, std_floor=50.0).fit(x).std.min() == 50.0


def test_zscore_constant_data() -> None:
    out = Normalizer("zscore").fit(np.full((4, 3), 7, np.uint8)).transform(np.full((1, 3), 9))
    np.testing.assert_allclose(out, 2.0)


def test_minmax(x: np.ndarray) -> None:
    n = Normalizer("minmax").fit(x)
    out = n.transform(x)
    lo, hi = x.min(axis=0).astype(float), x.max(axis=0).astype(float)
    span = np.where(hi > lo, hi - lo, 1.0)
    np.testing.assert_allclose(out, (x - lo) / span, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out[:, :2], 0)  # constant pixels: (x - min) / 1
    assert out[1, 2] == 1.0


def test_none(x: np.ndarray) -> None:
    out = Normalizer("none").transform(x)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))


@pytest.mark.parametrize("method", Normalizer.METHODS)
def test_out_buffer_is_reused(x: np.ndarray, method: str) -> None:
    n = Normalizer(method, per_pixel=True).fit(x)
    buf = np.empty((16, 20), dtype=np.float32)
    first = n.transform(x[:16], out=buf)
    assert first is buf
    expected = n.transform(x[16:32])
    second = n.transform(x[16:32], out=buf)
    assert second is buf
    np.testing.assert_array_equal(buf, expected)


@pytest.mark.parametrize("method", Normalizer.METHODS)
def test_float64_and_float_input(x: np.ndarray, method: str) -> None:
    n = Normalizer(method).fit(x)
    a = n.transform(x, dtype=np.float64)
    assert a.dtype == np.float64
    b = n.transform(x.astype(np.float64))
    np.testing.assert_allclose(a, b, atol=1e-5)
    out64 = np.empty(x.shape)
    assert n.transform(x, out=out64) is out64


def test_out_validation(x: np.ndarray) -> None:
    n = Normalizer("unit")
    with pytest.raises(ValueError, match="out must be"):
        n.transform(x, out=np.empty((3, 20), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        n.transform(x, out=np.empty(x.shape, np.int32))
    with pytest.raises(ValueError, match="floating"):
        n.transform(x, dtype=np.int32)
    n.fit(x)
    with pytest.raises(ValueError, match="20 features"):
        n.transform(np.zeros((2, 5), np.uint8))


@pytest.mark.parametrize(
    ("method", "per_pixel"), [(m, False) for m in Normalizer.METHODS] + [("zscore", True)]
)
def test_dict_round_trip(x: np.ndarray, method: str, per_pixel: bool) -> None:
    n = Normalizer(method, per_pixel=per_pixel).fit(x)
    d = json.loads(json.dumps(n.to_dict()))
    assert d["method"] == method and d["per_pixel"] == per_pixel and d["n_features"] == 20
    m = Normalizer.from_dict(d)
    np.testing.assert_array_equal(m.transform(x), n.transform(x))


def test_from_dict_validates() -> None:
    d = Normalizer("minmax").fit(np.zeros((2, 4), np.uint8)).to_dict()
    d["min"] = [0.0, 0.0]
    with pytest.raises(ValueError, match="4 values"):
        Normalizer.from_dict(d)


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_unfitted_error(method: str) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        Normalizer(method).transform(np.zeros((2, 3), np.uint8))


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unit, unit256, symmetric, zscore, minmax, none"):
        Normalizer("standard")


def test_fit_needs_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        Normalizer("zscore").fit(np.zeros(5))
