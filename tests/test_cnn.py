"""Convolutional networks through the whole stack: the spec sizes them, ``digitnet train`` trains
them, the model file keeps their input shape and running statistics, a resumed run restores
those, and evaluate, predict, report, compare and the web API work with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digitnet.classifier import Classifier
from digitnet.cli import main
from digitnet.errors import SpecError
from digitnet.nn import BatchNorm, Conv2D, Dropout, Flatten, Linear, ReLU, Sequential, Unflatten, optim
from digitnet.nn.losses import SoftmaxCrossEntropy
from digitnet.recipes import load_recipe
from digitnet.spec import RunSpec, build
from digitnet.train import fit
from tests.test_cli import write_tiny_mnist

TINY_CNN = """
[model]
layers = [
  { type = "Conv2D", out_channels = 4, kernel_size = 3, padding = 1, bias = false },
  { type = "BatchNorm" }, { type = "ReLU" }, { type = "MaxPool2D", kernel_size = 2 },
  { type = "Conv2D", out_channels = 6, kernel_size = 3, stride = 2 },
  { type = "ReLU" }, { type = "Flatten" }, { type = "Dropout", p = 0.1 },
  { type = "Linear", out_features = 16 }, { type = "BatchNorm" }, { type = "ReLU" }, { type = "Linear" },
]
[training]
lr = 0.01
batch_size = 25
epochs = 3
"""
LAYERS = RunSpec.from_dict({"model": {"layers": [
    {"type": "Conv2D", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"type": "BatchNorm"},
    {"type": "ReLU"}, {"type": "MaxPool2D", "kernel_size": 2}, {"type": "Flatten"}, {"type": "Linear"}]}})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny"), n_train=300, n_test=60)


@pytest.fixture(scope="module")
def cnn_run(tiny, tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("cfg") / "cnn.toml"
    config.write_text(TINY_CNN)
    run = tmp_path_factory.mktemp("runs") / "cnn"
    assert main(["train", "--config", str(config), "--data", str(tiny), "--out", str(run),
                 "--valid-size", "50", "--no-progress"]) == 0
    return run


# --------------------------------------------------------------------------- the spec
def test_the_spec_sizes_every_layer_from_the_image_shape():
    model = build(LAYERS, 784, 10).model
    assert isinstance(model.layers[0], Unflatten) and model.layers[0].shape == (1, 28, 28)
    assert model.layers[1].in_channels == 1 and model.layers[2].num_features == 4
    assert model.layers[-1].in_features == 4 * 14 * 14 and model.layers[-1].out_features == 10
    assert model.input_shape == (784,) and model.output_size == 10


@pytest.mark.parametrize("layers,message", [
    ([{"type": "Conv2D", "out_channels": 4}, {"type": "Linear"}],
     r"model.layers\[1\]: Linear takes feature vectors, got inputs of shape \(4, 26, 26\); a Flatten"),
    ([{"type": "Conv2D", "out_channels": 4, "kernel_size": 29}, {"type": "Flatten"}, {"type": "Linear"}],
     r"model.layers\[0\]: a 29x29 kernel with padding 0 does not fit 28x28 images"),
    ([{"type": "Conv2D", "out_channels": 4, "in_channels": 3}, {"type": "Flatten"}, {"type": "Linear"}],
     r"model.layers\[0\]: in_channels is 3, but its input has 1 channels"),
    ([{"type": "Linear", "out_features": 8}, {"type": "MaxPool2D"}, {"type": "Flatten"}, {"type": "Linear"}],
     r"model.layers\[1\]: MaxPool2D takes images"),
    ([{"type": "Conv2D", "out_channels": 0}, {"type": "Flatten"}, {"type": "Linear"}],
     r"model.layers\[0\]: out_channels must be a positive whole number, got 0"),
    ([{"type": "Conv2D", "out_channels": 4, "stride": "2"}, {"type": "Flatten"}, {"type": "Linear"}],
     r"model.layers\[0\]: stride must be a whole number or a pair of them, got '2'"),
    ([{"type": "Conv2D", "out_channels": 4, "dilation": 2}, {"type": "Flatten"}, {"type": "Linear"}],
     r"model.layers\[0\]: layer 'Conv2D' takes no option 'dilation'"),
    ([{"type": "Conv2D", "out_channels": 10}, {"type": "GlobalAvgPool2D"}, {"type": "BatchNorm"},
      {"type": "Linear", "out_features": 10}, {"type": "Conv2D", "out_channels": 2}],
     r"model.layers\[4\]: Conv2D takes images"),
])
def test_a_network_that_does_not_fit_is_a_one_line_error_naming_the_layer(layers, message):
    with pytest.raises(SpecError, match=message):
        build(RunSpec().replace(layers=layers), 784, 10)


def test_the_recipes_are_lenet5_and_two_small_cnns():
    lenet = build(load_recipe("lenet5").faithful, 784, 10).model
    shapes = lenet.shapes()
    assert lenet.num_parameters == 61_706
    convs = [i for i, layer in enumerate(lenet.layers) if isinstance(layer, Conv2D)]
    assert [shapes[i] for i in convs] == [(6, 28, 28), (16, 10, 10), (120, 1, 1)]
    wide = build(load_recipe("cnn-wide").faithful, 784, 10).model
    assert [layer.out_channels for layer in wide.layers if isinstance(layer, Conv2D)] == [32, 32, 64, 64]
    assert sum(isinstance(layer, BatchNorm) for layer in wide.layers) == 5
    cnn = build(load_recipe("cnn").faithful, 784, 10).model
    assert [layer.out_channels for layer in cnn.layers if isinstance(layer, Conv2D)] == [16, 32]
    assert cnn.num_parameters == 417_786 and cnn.shapes()[8] == (32, 7, 7)
    spec = load_recipe("cnn").faithful
    assert spec.data.valid_size == 0 and "affine" in spec.data.augment  # all 60,000 images, distorted


# --------------------------------------------------------------------------- training and files
def test_train_evaluate_predict_a_cnn(cnn_run, tiny, capsys, tmp_path):
    metrics = json.loads((cnn_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8  # the tiny digits are easy
    assert main(["evaluate", str(cnn_run), "--data", str(tiny)]) == 0
    assert "accuracy:" in capsys.readouterr().out
    assert main(["predict", str(cnn_run), "--index", "0", "--index", "3", "--data", str(tiny), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 2 and all(len(r["probabilities"]) == 10 for r in results)
    pil = pytest.importorskip("PIL.Image")
    image = np.full((56, 56), 255, np.uint8)
    image[10:14, 8:48] = 0  # a dark bar on white paper, like the tiny digits' bars
    pil.fromarray(image).save(tmp_path / "bar.png")
    assert main(["predict", str(cnn_run), str(tmp_path / "bar.png"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digit"] in range(10)


def test_the_model_file_keeps_the_input_shape_and_the_running_statistics(cnn_run, tiny):
    clf = Classifier.load(cnn_run / "model.npz")
    with np.load(cnn_run / "model.npz", allow_pickle=False) as archive:
        meta = json.loads(str(archive["__meta__"]))
        names = set(archive.files)
    assert meta["architecture"]["input_shape"] == [784]
    assert meta["architecture"]["layers"][0] == {"type": "Unflatten", "shape": [1, 28, 28]}
    assert {"param/2.running_mean", "param/2.running_var"} <= names
    bn = clf.model.layers[2]
    assert isinstance(bn, BatchNorm) and not np.allclose(bn.buffers["running_var"], 1)
    from digitnet.data import load_mnist

    x = load_mnist(tiny, progress=False).x_test[:7]
    rows = clf.predict_proba(x)
    np.testing.assert_array_equal(clf.predict_proba(x.reshape(7, 28, 28)), rows)  # images work as rows
    np.testing.assert_array_equal(clf.predict_proba(x.reshape(7, 1, 28, 28)), rows)
    with pytest.raises(ValueError, match="784 features"):
        clf.predict(np.zeros((2, 1, 27, 27)))
    maps = clf.feature_maps(x[:2])
    assert [m.maps.shape for m in maps] == [(2, 4, 28, 28), (2, 6, 6, 6)]
    assert maps[0].title == "convolution 1: 4 maps of 28x28 (3x3 kernels, then BatchNorm, ReLU)"
    assert [h.shape for h in clf.hidden_activations(x[:2])] == [(2, 16)]  # feature vectors only


@pytest.mark.parametrize("change, message", [
    # a few weights that would unfold into 4096 maps of 382x382 for one image
    (lambda m: (m["normalization"].update(n_features=65_536), m["architecture"].update(
        input_shape=[65_536], layers=[
            {"type": "Unflatten", "shape": [1, 256, 256]},
            {"type": "Conv2D", "in_channels": 1, "out_channels": 4096, "kernel_size": 3, "padding": 64},
            {"type": "GlobalAvgPool2D"}, {"type": "Linear", "in_features": 4096, "out_features": 10}])),
     r"architecture.layers\[1\]: needs .* values per sample"),
    (lambda m: m["architecture"]["layers"][1].update(in_channels=4096, out_channels=4096, kernel_size=64),
     "architecture.layers: declare .* parameters, over the limit"),
    (lambda m: m["architecture"]["layers"][1].update(kernel_size=[3, 3, 3]),
     r"kernel_size: must be a list of 2"),
    (lambda m: m["architecture"].update(input_shape=[1, 0, 28]), r"input_shape\[1\]: must be an integer"),
    (lambda m: m["architecture"]["layers"][1].update(in_channels=2), "in_channels is 2, but its input has 1"),
])
def test_a_hostile_cnn_model_file_is_refused_before_anything_large_is_made(cnn_run, tmp_path, change,
                                                                          message):
    from digitnet.io import ModelFileError, load_bundle, save_bundle

    meta, arrays = load_bundle(cnn_run / "model.npz", kind="model")
    change(meta)
    path = save_bundle(tmp_path / "hostile.npz", meta, arrays)
    with pytest.raises(ModelFileError, match=message):
        Classifier.load(path)


def test_an_mlp_model_file_without_an_input_shape_still_loads(tmp_path):
    from digitnet.io import load_bundle, save_bundle
    from tests.conftest import make_blobs, save_small_model

    x, y = make_blobs(60, n_classes=2)
    path = save_small_model(tmp_path / "m.npz", x, y, hidden=8, epochs=1)
    meta, arrays = load_bundle(path, kind="model")
    meta["architecture"].pop("input_shape", None)  # as files written before convolutions
    save_bundle(path, meta, arrays)
    clf = Classifier.load(path)
    assert clf.n_features == 784 and clf.predict(x[:3]).shape == (3,)


def _cnn_fit(epochs: int, **kwargs):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, 64)).astype(np.float32) / 255
    y = np.arange(64) % 3
    x[np.arange(64), y * 20] = 4.0  # learnable
    layers = np.random.default_rng(1)
    model = Sequential([Unflatten((1, 8, 8)), Conv2D(1, 3, 3, rng=layers), BatchNorm(3), ReLU(), Flatten(),
                        Dropout(0.2, rng=layers), Linear(3 * 6 * 6, 3, rng=layers)], input_shape=(64,))
    history = fit(model, SoftmaxCrossEntropy(), optim.Adam(0.01), x, y, epochs=epochs, batch_size=16,
                  progress=False, seed=0, **kwargs)
    return model, history


def test_a_resumed_cnn_run_restores_the_running_statistics(tmp_path):
    """Stopped after two epochs and resumed from the checkpoint: the same weights and the
    same running statistics as an uninterrupted run."""
    full, _ = _cnn_fit(4)

    class Stop(Exception):
        pass

    def stop(epoch, history):
        if epoch == 2:
            raise Stop

    ckpt = tmp_path / "ckpt.npz"
    with pytest.raises(Stop):
        _cnn_fit(4, checkpoint=ckpt, on_epoch_end=stop)
    resumed, history = _cnn_fit(4, checkpoint=ckpt, resume=True)
    assert history.epoch == [1, 2, 3, 4]
    want, got = full.state_dict(), resumed.state_dict()
    assert "2.running_mean" in got and set(want) == set(got)
    assert not np.allclose(got["2.running_mean"], 0)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


# --------------------------------------------------------------------------- report, compare, web
def test_report_shows_filters_and_feature_maps(cnn_run, tiny):
    pytest.importorskip("matplotlib")
    pytest.importorskip("plotly")
    from digitnet import plots

    assert main(["report", str(cnn_run), "--data", str(tiny), "--pca-points", "40"]) == 0
    for name in ("weights.png", "feature_maps.png"):
        assert plots.png_size((cnn_run / name).read_bytes())[0] > 300, name
    page = (cnn_run / "report.html").read_text(encoding="utf-8")
    assert "First-layer filters" in page and "Feature maps of one digit" in page
    assert "Last hidden layer's activations (16 units)" in page


def test_compare_names_the_convolutions(cnn_run, tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    mlp = tmp_path / "mlp"
    assert main(["train", "--data", str(tiny), "--out", str(mlp), "--hidden", "8", "--epochs", "1",
                 "--valid-size", "50", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(cnn_run), str(mlp), "--out", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert rows[0]["hidden"] == ["c4", "c6", 16] and rows[0]["activation"] == "ReLU"
    assert rows[1]["hidden"] == [8]


def test_the_web_api_returns_feature_maps(cnn_run, tiny):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import base64
    import warnings

    with warnings.catch_warnings():  # Starlette >= 1.x nudges towards httpx2; httpx still works
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient

    from digitnet.data import load_mnist
    from digitnet.web.app import create_app

    client = TestClient(create_app(Classifier.load(cnn_run / "model.npz")))
    info = client.get("/api/model").json()
    assert info["convolutions"] == [4, 6] and info["description"].startswith("1x28x28, convolutions 4-6")
    pixels = load_mnist(tiny, progress=False).x_test[0]
    answer = client.post("/api/predict", json=pixels.tolist()).json()
    shapes = [(m["channels"], m["height"], m["width"]) for m in answer["feature_maps"]]
    assert shapes == [(4, 28, 28), (6, 6, 6)]
    first = answer["feature_maps"][0]
    data = np.frombuffer(base64.b64decode(first["data"]), np.uint8)
    assert data.size == 4 * 28 * 28 and data.max() == 255 and not first["signed"]
    assert len(answer["hidden"]) == 1 and len(answer["hidden"][0]) == 16


def test_the_estimator_trains_a_cnn_from_a_layer_list():
    from digitnet.estimator import MLPClassifier

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (48, 784)).astype(np.uint8)
    y = np.arange(48) % 3
    layers = ({"type": "Conv2D", "out_channels": 2, "kernel_size": 3}, {"type": "BatchNorm"},
              {"type": "ReLU"}, {"type": "MaxPool2D", "kernel_size": 2}, {"type": "Flatten"},
              {"type": "Linear"})
    clf = MLPClassifier(layers=layers, epochs=2, batch_size=16, seed=0).fit(x, y)
    model = clf.classifier_.model
    assert isinstance(model.layers[1], Conv2D) and model.shapes()[-1] == (3,)
    assert clf.predict(x[:5]).shape == (5,) and clf.predict_proba(x[:5]).shape == (5, 3)
    again = MLPClassifier(layers=layers, epochs=2, batch_size=16, seed=0).fit(x, y)
    np.testing.assert_array_equal(again.predict_proba(x), clf.predict_proba(x))  # a seed repeats it
