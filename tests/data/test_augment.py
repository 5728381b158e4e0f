"""Augmentation: the deterministic pieces against plain references, the random ones seeded,
and augmented training reproducible and resumable."""

from __future__ import annotations

import numpy as np
import pytest

from digitnet.data import Normalizer
from digitnet.data.augment import (
    Augmenter,
    affine_grid,
    check_config,
    dilate,
    erode,
    gaussian_matrix,
    sample,
    smooth,
)
from digitnet.nn import SGD, SoftmaxCrossEntropy, mlp
from digitnet.train import fit
from tests.conftest import make_blobs


def digits(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        r, c = rng.integers(6, 18, 2)
        x[i, r:r + 8, c:c + 3] = 255  # a bar somewhere inside the frame
    return x


def grid(n, rotation=0.0, scale=1.0, shear=0.0, shift=(0.0, 0.0)):
    return affine_grid(np.full(n, rotation), np.full(n, scale), np.full(n, shear), np.tile(shift, (n, 1)))


def test_identity_affine_returns_the_images():
    x = digits()
    np.testing.assert_array_equal(sample(x, *grid(len(x))), x)


def test_integer_shift_moves_the_ink():
    x = digits()
    out = sample(x, *grid(len(x), shift=(2.0, -3.0)))  # two down, three left
    np.testing.assert_array_equal(out[:, 2:, :-3], x[:, :-2, 3:])


def test_quarter_turn_is_a_rot90():
    x = digits()
    out = sample(x, *grid(len(x), rotation=90.0))
    assert any(np.allclose(out, np.rot90(x, k, axes=(1, 2)), atol=1e-3) for k in (1, 3))


def test_zoom_and_shear_keep_the_centre():
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 13:15, 13:15] = 255
    for kw in ({"scale": 1.5}, {"scale": 0.6}, {"shear": 20.0}):
        out = sample(x, *grid(1, **kw))
        rows, cols = np.nonzero(out[0] > 1)
        assert abs(rows.mean() - 13.5) < 0.6 and abs(cols.mean() - 13.5) < 0.6, kw


def test_bilinear_sampling_matches_a_loop():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, (2, 28, 28)).astype(np.float32)
    rows = rng.uniform(-2, 30, (2, 28, 28)).astype(np.float32)
    cols = rng.uniform(-2, 30, (2, 28, 28)).astype(np.float32)
    out = sample(x, rows, cols)

    def at(i, r, c):
        return x[i, r, c] if 0 <= r < 28 and 0 <= c < 28 else 0.0

    for i, r, c in [(0, 5, 7), (1, 0, 0), (1, 27, 13), (0, 14, 27)]:
        y, xx = rows[i, r, c], cols[i, r, c]
        y0, x0 = int(np.floor(y)), int(np.floor(xx))
        fy, fx = y - y0, xx - x0
        want = ((1 - fy) * (1 - fx) * at(i, y0, x0) + (1 - fy) * fx * at(i, y0, x0 + 1)
                + fy * (1 - fx) * at(i, y0 + 1, x0) + fy * fx * at(i, y0 + 1, x0 + 1))
        assert out[i, r, c] == pytest.approx(want, rel=1e-4, abs=1e-3)


def test_smoothing_is_a_normalised_gaussian_on_both_axes():
    g = gaussian_matrix(3.0)
    np.testing.assert_allclose(g.sum(axis=1), 1, rtol=1e-6)
    f = np.random.default_rng(0).standard_normal((3, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(smooth(f, 3.0), g @ f @ g.T, rtol=1e-4, atol=1e-5)
    assert smooth(f, 3.0).std() < 0.3 * f.std()
    np.testing.assert_allclose(smooth(np.ones((1, 28, 28), np.float32), 3.0), 1, rtol=1e-5)


def test_dilation_and_erosion_are_cross_max_and_min():
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 10, 10] = 200
    d = dilate(x)
    assert d[0, 9:12, 10].tolist() == [200, 200, 200] and d[0, 10, 9:12].tolist() == [200, 200, 200]
    assert d[0, 9, 9] == 0  # a cross, not a square
    np.testing.assert_array_equal(erode(d), x)  # closing the dot gives it back
    np.testing.assert_allclose(dilate(x, 0.5)[0, 9, 10], 100)


def test_augmenter_is_seeded_random_and_keeps_the_scale():
    x = digits(20).reshape(20, -1).astype(np.uint8)
    aug = Augmenter.from_config(check_config(["affine", "elastic", "thickness", "noise"]))
    a, b = aug(x, np.random.default_rng(1)), aug(x, np.random.default_rng(1))
    c = aug(x, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and a.shape == (20, 784) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 255
    assert aug.config()["elastic"] == {"alpha": 30.0, "sigma": 5.0}


def test_the_images_do_not_depend_on_the_threads_that_made_them(monkeypatch):
    x = np.repeat(digits(8).reshape(8, -1).astype(np.uint8), 90, axis=0)  # 720 rows: three groups
    aug = Augmenter.from_config(check_config(["affine", "elastic", "thickness", "noise", "erase"]))
    from digitnet.nn.threads import over_blocks

    made = [aug(x, np.random.default_rng(5))]  # in this thread
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("DIGITNET_THREADS", threads)
        spread = lambda n, work: over_blocks(n, work, n << 20)  # noqa: E731
        made.append(aug(x, np.random.default_rng(5), run_groups=spread))
    np.testing.assert_array_equal(made[0], made[3])
    np.testing.assert_array_equal(made[0], made[1])
    np.testing.assert_array_equal(made[0], made[2])
    assert len({made[0][i].tobytes() for i in range(0, 720, 8)}) == 90  # each copy distorted anew


def test_thickness_beyond_one_pixel_is_full_passes_then_a_blended_one():
    from digitnet.data.augment import _repeated

    x = digits(3, seed=4)
    amount = np.array([0.25, 1.0, 1.75], np.float32)
    out = _repeated(erode, x, amount)
    np.testing.assert_allclose(out[0], erode(x[:1], 0.25)[0])
    np.testing.assert_array_equal(out[1], erode(x[1:2])[0])
    np.testing.assert_allclose(out[2], erode(erode(x[2:3]), 0.75)[0])
    np.testing.assert_array_equal(_repeated(dilate, x, np.zeros(3, np.float32)), x)


def test_noise_on_a_fraction_of_the_images_with_levels_up_to_max_std():
    x = np.full((400, 784), 128, np.uint8)
    out = Augmenter.from_config({"noise": {"std": 0, "max_std": 60, "p": 0.5}})(x, np.random.default_rng(0))
    spread = out.std(axis=1)
    clean = spread == 0
    assert 0.4 < clean.mean() < 0.6  # about half the images untouched
    assert spread[~clean].min() < 15 and 50 < spread[~clean].max() < 65  # levels spread up to 60
    fixed = Augmenter.from_config({"noise": {"std": 20}})(x, np.random.default_rng(0)).std(axis=1)
    assert abs(np.median(fixed) - 20) < 1.5 and fixed.min() > 15  # every image, one level
    with pytest.raises(ValueError, match="augment.thickness.amount: expected a number from 0 to 2"):
        check_config({"thickness": {"amount": 2.5}})


@pytest.mark.parametrize("value,message", [
    (["rotate"], "unknown augmentation 'rotate'"),
    ({"affine": {"rotation": 400}}, "augment.affine.rotation: expected a number from 0 to 180"),
    ({"elastic": {"alpah": 3}}, "no setting 'alpah'"),
    ({}, "expected augmentation names"),
])
def test_bad_augmentation_configs_name_the_key(value, message):
    with pytest.raises(ValueError, match=message):
        check_config(value)


def _train(epochs, **kw):
    x, y = make_blobs(300, n_classes=3, d=784)
    model = mlp([784, 16, 3], rng=0)
    history = fit(model, SoftmaxCrossEntropy(), SGD(0.05), x, y, epochs=epochs, batch_size=32,
                  preprocess=Normalizer("unit").fit(x), seed=4, progress=False,
                  augment=Augmenter.from_config({"affine": {}, "noise": {}}), **kw)
    return model, history


def test_augmented_training_is_reproducible_and_resumes_to_the_same_weights(tmp_path):
    a, ha = _train(3)
    b, _ = _train(3)
    for (_, pa, _), (_, pb, _) in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)

    class Stop(Exception):
        pass

    def stop(epoch, history):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        _train(3, checkpoint=tmp_path / "c.npz", on_epoch_end=stop)
    c, hc = _train(3, checkpoint=tmp_path / "c.npz", resume=True)
    for (_, pa, _), (_, pc, _) in zip(a.parameters(), c.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pc)
    assert hc.loss == ha.loss
