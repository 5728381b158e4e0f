"""ONNX export: the graph from raw pixels to labels and probabilities agrees with digitnet
(on the whole MNIST test set, and for every layer, loss and normalisation), and what cannot be
exported says what it is."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import digitnet.export

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from digitnet.classifier import Classifier  # noqa: E402
from digitnet.cli import main  # noqa: E402
from digitnet.data import Normalizer, load_mnist  # noqa: E402
from digitnet.errors import ExportError  # noqa: E402
from digitnet.export import onnx as exporter  # noqa: E402
from digitnet.nn import LAYERS, Layer, Linear, Sequential, SoftmaxCrossEntropy  # noqa: E402
from digitnet.spec import RunSpec, build  # noqa: E402
from tests.conftest import make_blobs, mnist_dir, requires_mnist  # noqa: E402
from tests.nn.test_harness import EXAMPLES  # noqa: E402

PIXELS = np.random.default_rng(7).integers(0, 256, size=(300, 784)).astype(np.uint8)


def agree(clf: Classifier, pixels: np.ndarray = PIXELS) -> dict:
    result = exporter.check_with_onnxruntime(exporter.to_onnx(clf), clf, pixels)
    assert result["label_mismatches"] == 0, result
    assert result["max_probability_difference"] < 1e-5, result
    return result


@requires_mnist
def test_the_export_matches_digitnet_on_all_10000_mnist_test_images(tmp_path):
    from tests.web.helpers import mnist_classifier

    clf = mnist_classifier(mnist_dir())  # 784-128-10, two epochs (shared with the web tests)
    path = exporter.save_onnx(clf, tmp_path / "model.onnx")
    x_test = load_mnist(mnist_dir()).x_test
    result = exporter.check_with_onnxruntime(path, clf, x_test)
    print(f"\nONNX parity on {result['images']} MNIST test images: {result['label_mismatches']} labels "
          f"differ, max probability difference {result['max_probability_difference']:.2e}")
    assert result["images"] == 10_000
    assert result["label_mismatches"] == 0
    assert result["max_probability_difference"] < 1e-5
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["classes"]) == list(range(10)) and props["normalization"] == "unit"
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["n", 784]
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]


def network(layer: Layer, width: int, out_width: int) -> Sequential:
    """``Linear(784 -> width)``, the layer, ``Linear(out_width -> 3)``."""
    rng = np.random.default_rng(1)
    head = Linear(784, width, rng=rng, weight_init="glorot_uniform")
    return Sequential([head, layer, Linear(out_width, 3, rng=rng, weight_init="glorot_uniform")])


@pytest.mark.parametrize("name", sorted(LAYERS.names()))
def test_every_layer_type_exports_or_the_export_names_it(name):
    config = {"type": name, **EXAMPLES[name]}
    layer = LAYERS.create(config, rng=np.random.default_rng(0), dtype=np.float32)
    if "bias_init" in config:
        layer.params["bias"][...] = np.linspace(-0.5, 0.5, layer.params["bias"].size)
    width = config.get("in_features", 6)
    model = network(layer, width, config.get("out_features", width)).eval()
    clf = Classifier(model, SoftmaxCrossEntropy(), Normalizer("unit").fit(PIXELS), [0, 1, 2])
    if name in exporter.LAYER_EXPORTERS:
        agree(clf)
    else:
        with pytest.raises(ExportError, match=f"no exporter for {name} layers"):
            exporter.to_onnx(clf)


class Mystery(Layer):
    """A layer type no exporter knows (not registered, so no other test sees it)."""

    name = "Mystery"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x


def test_a_layer_without_an_exporter_is_a_one_line_error_naming_it():
    norm = Normalizer("unit").fit(PIXELS)
    clf = Classifier(network(Mystery(), 6, 6), SoftmaxCrossEntropy(), norm, [0, 1, 2])
    with pytest.raises(ExportError, match=r"cannot export layer 1, Mystery, to ONNX: there is no exporter "
                                          r"for Mystery layers \(there are for Dropout, LeakyReLU, Linear"):
        exporter.to_onnx(clf)


@pytest.mark.parametrize("normalization", [{"method": "unit"}, {"method": "unit256"}, {"method": "symmetric"},
                                           {"method": "zscore"}, {"method": "zscore", "per_pixel": True},
                                           {"method": "minmax"}, {"method": "none"}])
def test_every_normalisation_is_in_the_graph(normalization):
    x, y = make_blobs(200, n_classes=3, seed=4)
    built = build(RunSpec().replace(hidden=(16,), activation="tanh"), 784, 3)
    norm = Normalizer(normalization["method"], per_pixel=normalization.get("per_pixel", False)).fit(x)
    if normalization["method"] == "none":  # raw 0-255 inputs: keep the tanh units out of saturation
        built.model[0].params["weight"] *= 1 / 255
    agree(Classifier(built.model.eval(), built.loss, norm, [3, 5, 8]))


@pytest.mark.parametrize("settings,classes", [
    ({"loss": "binary_cross_entropy", "digits": (4, 9)}, [4, 9]),
    ({"loss": "mse"}, [0, 1, 2]),
    ({"loss": "unstable_cross_entropy", "activation": "sigmoid"}, [0, 1, 2]),
    ({"dtype": "float64", "activation": "leaky_relu", "dropout": 0.3}, [0, 1, 2]),
])
def test_every_loss_link_and_both_dtypes(settings, classes):
    built = build(RunSpec().replace(hidden=(16,), **settings), 784, len(classes))
    clf = Classifier(built.model.eval(), built.loss, Normalizer("unit"), classes)
    result = agree(clf)
    graph = exporter.to_onnx(clf).graph
    expected = onnx.helper.np_dtype_to_tensor_dtype(built.model.dtype)
    assert graph.output[1].type.tensor_type.elem_type == expected
    assert result["images"] == len(PIXELS)


def test_a_loss_digitnet_has_no_probabilities_for_is_refused():
    spec = RunSpec.from_dict({"data": {"digits": [0, 1]}, "training": {"loss": "unclipped_bce"}})
    built = build(spec, 784, 2)
    clf = Classifier(built.model.eval(), built.loss, Normalizer("unit"), [0, 1])
    with pytest.raises(ExportError, match="cannot export a network trained with the unclipped_bce loss to "
                                          "ONNX: there is no exporter for its probabilities"):
        exporter.to_onnx(clf)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    x, y = make_blobs(120, n_classes=3, seed=5)
    built = build(RunSpec().replace(hidden=(8,)), 784, 3)
    path = tmp_path_factory.mktemp("model") / "model.npz"
    return Classifier(built.model.eval(), built.loss, Normalizer("unit").fit(x), [1, 4, 7]).save(path)


def test_the_export_command_checks_in_onnxruntime_and_writes(model_file, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(model_file), "--onnx", str(out), "--check-images", "50"]) == 0
    printed = capsys.readouterr().out
    assert "input 'pixels' float32 (n, 784)" in printed and "classes 1, 4, 7" in printed
    assert "checked in onnxruntime" in printed and "on 50 random images: same labels" in printed
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(props["classes"]) == [1, 4, 7]


def test_export_errors_are_one_line(model_file, tmp_path, capsys, monkeypatch):
    assert main(["export", str(tmp_path / "absent.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the onnx extra were not installed
    monkeypatch.delitem(sys.modules, "digitnet.export.onnx")
    monkeypatch.delattr(digitnet.export, "onnx")
    assert main(["export", str(model_file), "--onnx", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err == "digitnet export: error: ONNX export needs onnx, which is not installed: " \
                  "pip install 'digitnet[onnx]'\n"
    assert not (tmp_path / "m.onnx").exists()
