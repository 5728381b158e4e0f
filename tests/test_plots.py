"""Every figure of the run report, drawn from a small trained model on synthetic data."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from digitnet import plots  # noqa: E402
from digitnet.estimator import MLPClassifier  # noqa: E402
from digitnet.metrics import classification_report  # noqa: E402
from tests.conftest import make_blobs  # noqa: E402


@pytest.fixture(scope="module")
def model():
    """A 784-16-3 network trained for 3 epochs on three separable 'digit' classes."""
    x, y = make_blobs(n=240, n_classes=3, seed=1)
    y = np.array([2, 5, 7])[y]  # not 0..k-1: labels are digits
    clf = MLPClassifier(hidden=(16,), epochs=3, batch_size=32, lr=0.01, valid_size=0.25,
                        seed=0).fit(x, y)
    return clf, x, y


def pixels(png: bytes) -> np.ndarray:
    """RGB(A) floats (h, w, c) of PNG bytes."""
    return imread(io.BytesIO(png), format="png")


def not_blank(png: bytes) -> bool:
    img = pixels(png)[..., :3]
    return bool((img < 0.5).mean() > 0.002)  # some dark ink: lines, text, images


def test_png_size_reads_the_header():
    png = plots.plot_precision_recall([0.9, 1.0], [1.0, 0.8], ["0", "1"])
    width, height = plots.png_size(png)
    assert pixels(png).shape[:2] == (height, width) == (450, 500)
    with pytest.raises(ValueError, match="not PNG"):
        plots.png_size(b"GIF89a" + bytes(30))


def test_history(model, tmp_path):
    clf, _, _ = model
    history = clf.history_.to_dict()
    png = plots.plot_history(history, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes() == png
    assert plots.png_size(png) == (1100, 420)
    assert not_blank(png)
    # the two curves use the palette's colours
    rgb = (pixels(png)[..., :3] * 255).round()
    for color in (plots.PALETTE["train"], plots.PALETTE["valid"]):
        target = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(rgb - target).sum(axis=-1) < 10).sum() > 50, color


def test_history_without_validation():
    history = {"epoch": [1, 2], "loss": [0.5, 0.3], "train_accuracy": [0.8, 0.9],
               "val_loss": [float("nan")] * 2, "val_accuracy": [float("nan")] * 2, "best_epoch": 2}
    png = plots.plot_history(history)
    assert plots.png_size(png) == (1100, 420)
    rgb = (pixels(png)[..., :3] * 255).round()
    orange = np.array([int(plots.PALETTE["valid"][i:i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(rgb - orange).sum(axis=-1) < 10).sum() == 0  # no validation curve drawn


def test_confusion_matrix(model):
    clf, x, y = model
    classes = clf.classes_
    report = classification_report(np.searchsorted(classes, y), np.searchsorted(classes, clf.predict(x)),
                                   num_classes=3)
    png = plots.plot_confusion_matrix(report["confusion_matrix"], [str(c) for c in classes])
    assert plots.png_size(png) == (480, 420)
    assert not_blank(png)
    ten = plots.plot_confusion_matrix(np.diag(np.arange(10, 20)), [str(i) for i in range(10)])
    assert plots.png_size(ten) == (860, 710)
    with pytest.raises(ValueError, match="does not fit 2 class names"):
        plots.plot_confusion_matrix(np.eye(3), ["a", "b"])


def test_confident_mistakes(model):
    clf, x, y = model
    proba = clf.predict_proba(x[:7])
    wrong = np.array([5, 2, 7, 7, 2, 5, 2])  # pretend labels, so that there are mistakes to show
    png = plots.plot_confident_mistakes(x[:7], wrong, clf.predict(x[:7]), proba.max(axis=1))
    assert plots.png_size(png) == (1075, 520)  # 5 columns, 2 rows
    assert not_blank(png)
    empty = plots.plot_confident_mistakes(x[:0], [], [], [])
    assert plots.png_size(empty) == (1075, 150)
    assert plots.mistake_title(7, 1, 0.9349) == "true 7 / predicted 1 (0.93)"
    with pytest.raises(ValueError, match="3 images but 2 titles"):
        plots.plot_digit_grid(x[:3], ["a", "b"])


def test_class_samples(model):
    _, x, y = model
    png = plots.plot_class_samples(x, y, [2, 5, 7], per_class=4)
    assert plots.png_size(png) == (430, 325)
    assert not_blank(png)
    # fewer images than asked: as many columns as the largest class has
    few = plots.plot_class_samples(x[:4], np.array([2, 2, 5, 7]), [2, 5, 7], per_class=10)
    assert plots.png_size(few) == (260, 325)


def test_first_layer_weights(model):
    clf, _, _ = model
    weights = clf.classifier_.model.layers[0].params["weight"]
    assert weights.shape == (784, 16)
    png = plots.plot_first_layer_weights(weights)
    assert plots.png_size(png) == (960, 330)  # 16 units: two rows of eight
    rgb = pixels(png)[..., :3]
    reds = ((rgb[..., 0] > 0.6) & (rgb[..., 2] < 0.4)).sum()
    blues = ((rgb[..., 2] > 0.6) & (rgb[..., 0] < 0.4)).sum()
    assert reds > 100 and blues > 100  # positive and negative weights both shown
    wide = plots.plot_first_layer_weights(np.random.default_rng(0).normal(size=(784, 100)))
    assert plots.png_size(wide) == (960, 1110)  # only the first 64 units
    with pytest.raises(ValueError, match="not a square image"):
        plots.plot_first_layer_weights(np.ones((90, 4)))


def test_precision_recall(model):
    png = plots.plot_precision_recall([0.97, 0.99, 1.0], [0.98, 0.965, 0.99], ["2", "5", "7"])
    assert plots.png_size(png) == (500, 450)
    assert not_blank(png)
    many = plots.plot_precision_recall(np.linspace(0.5, 1, 10), np.linspace(1, 0.5, 10),
                                       [str(i) for i in range(10)])
    assert plots.png_size(many) == (1050, 450)
    with pytest.raises(ValueError, match="must have 3 values"):
        plots.plot_precision_recall([1.0], [1.0, 1.0], ["a", "b", "c"])


def test_validation_curves(model):
    clf, _, _ = model
    h = clf.history_.to_dict()
    no_valid = {**h, "val_accuracy": [float("nan")] * len(h["loss"]), "val_loss": [float("nan")] * 3}
    png = plots.plot_validation_curves([("a", h), ("b", no_valid)])
    assert plots.png_size(png) == (1100, 465)
    assert not_blank(png)
    with pytest.raises(ValueError, match="no runs"):
        plots.plot_validation_curves([])
