"""How objects show in a notebook (``_repr_html_``) and in a terminal (``__repr__``,
``digitnet summary``): models as a table of layers with output shapes and parameter counts,
histories as a plot (or a table without matplotlib), classifiers and run directories."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from digitnet.classifier import Classifier
from digitnet.cli import main
from digitnet.data import Normalizer
from digitnet.experiment import run_training
from digitnet.nn import mlp
from digitnet.runs import load_run
from digitnet.spec import RunSpec, build
from digitnet.train import History
from tests.conftest import make_blobs
from tests.test_cli import write_tiny_mnist


def test_a_model_is_a_table_of_layers_output_shapes_and_parameters():
    model = mlp([784, 256, 10], dropout=0.2, activation="leaky_relu", rng=0)
    assert model.layer_table() == [("Linear(784 -> 256)", "(n, 256)", 200_960), ("LeakyReLU",
                                    "(n, 256)", 0), ("Dropout(p=0.2)", "(n, 256)", 0),
                                   ("Linear(256 -> 10)", "(n, 10)", 2_570)]
    text = model.summary()
    assert text.splitlines()[0].split() == ["#", "layer", "output", "shape", "params"]
    assert "  0  Linear(784 -> 256)  (n, 256)" in text
    assert text.splitlines()[-2].split() == ["total", "203,530"]
    assert "float32, 0.81 MB of weights" in text
    html = model._repr_html_()
    assert html.startswith("<table") and html.count("<tr>") == 4 + 2
    assert "<code>Linear(784 -&gt; 256)</code>" in html and ">203,530<" in html
    assert repr(model).startswith("Sequential(\n  Linear(in_features=784")  # the plain repr builds it


def test_describing_a_model_runs_nothing_through_it():
    model = mlp([20, 8, 3], rng=0)
    x = np.ones((5, 20), dtype=np.float32)
    model.forward(x)
    kept = model[1]._positive
    model.summary()
    model._repr_html_()
    assert model[1]._positive is kept and model[1]._positive.shape == (5, 8)  # backward still works
    model.backward(np.ones((5, 3), dtype=np.float32))


def test_a_shape_that_does_not_fit_shows_as_a_question_mark():
    model = mlp([20, 8, 3], rng=0)
    model.layers[2] = mlp([9, 3], rng=0)[0]  # expects 9 features, gets 8
    assert [row[1] for row in model.layer_table()] == ["(n, 8)", "(n, 8)", "?"]


@pytest.fixture(scope="module")
def classifier():
    x, y = make_blobs(60, n_classes=3, seed=3)
    built = build(RunSpec().replace(hidden=(16,)), 784, 3)
    return Classifier(built.model.eval(), built.loss, Normalizer("unit").fit(x), [3, 5, 8],
                      {"spec": RunSpec().replace(hidden=(16,)).to_dict()})


def test_a_classifier_says_what_it_is(classifier):
    text = repr(classifier)
    assert "\n" not in text and len(text) < 200
    assert text == ("Classifier(Linear(784 -> 16), ReLU, Linear(16 -> 3); 12,611 parameters, float32; "
                    "cross_entropy; normalization 'unit'; classes 3, 5, 8)")
    html = classifier._repr_html_()
    assert "784 raw pixels (0-255), scaled by &#x27;unit&#x27;" in html and "optimizer adam, lr 0.002" in html
    assert "<code>Linear(16 -&gt; 3)</code>" in html


def test_digitnet_summary_prints_the_same_table(classifier, tmp_path, capsys):
    path = classifier.save(tmp_path / "m.npz")
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("classes       3, 5, 8\ninputs        784 raw pixels")
    assert classifier.model.summary() in out
    assert main(["summary", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == [3, 5, 8] and summary["parameters"] == 12_611
    assert summary["layers"][0] == {"layer": "Linear(784 -> 16)", "output_shape": "(n, 16)",
                                    "parameters": 12_560}
    assert main(["summary", str(tmp_path / "absent.npz")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def history() -> History:
    return History(epoch=[1, 2, 3], loss=[0.9, 0.5, 0.4], train_accuracy=[0.7, 0.8, 0.85],
                   val_loss=[0.8, 0.6, 0.65], val_accuracy=[0.72, 0.79, 0.78], lr=[0.1] * 3,
                   seconds=[1.0, 1.5, 1.25], best_epoch=2)


def test_a_history_is_a_plot_or_without_matplotlib_a_table(monkeypatch):
    h = history()
    assert repr(h) == "History(3 epochs, loss 0.4000, val_accuracy 0.7800, best epoch 2 by val_loss, 3.8s)"
    assert repr(History()) == "History(no epochs)"
    pytest.importorskip("matplotlib")
    assert "<img alt='training history'" in h._repr_html_() and "data:image/png;base64," in h._repr_html_()
    monkeypatch.setitem(sys.modules, "digitnet.plots", None)  # as if matplotlib were not installed
    html = h._repr_html_()
    assert "<img" not in html and html.count("<tr>") == 4
    assert "<td style='padding:2px 10px;text-align:left'>0.65</td>" in html


def test_a_run_directory_shows_its_results_settings_history_and_model(tmp_path):
    data = write_tiny_mnist(tmp_path / "tiny")
    spec = RunSpec().replace(hidden=(8,), epochs=2, valid_size=50)
    run_training(spec, out=tmp_path / "run", data_dir=data, fetch=False, log=lambda line: None,
                 progress=False)
    run = load_run(tmp_path / "run")
    text = repr(run)
    assert text.startswith(f"Run('{tmp_path / 'run'}', epochs 2, test accuracy ") and "\n" not in text
    assert ("training.epochs", 2) in run.settings() and ("model.hidden", [8]) in run.settings()
    assert len(run.history.loss) == 2
    html = run._repr_html_()
    assert "digitnet run run" in html and "training.epochs" in html and "Linear(784 -&gt; 8)" in html
    # the facts, the settings, the classifier's facts and layers, and the history as a plot or a table
    assert html.count("<table") == (4 if "<img alt='training history'" in html else 5)
