"""``--dataset`` end to end on tiny data: training records the dataset, and its class names show
in evaluate, predict, the report and the web page."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitnet.classifier import Classifier
from digitnet.cli import main
from digitnet.metrics import classification_report, format_report
from tests.test_cli import write_tiny_mnist


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny-fashion"))


@pytest.fixture(scope="module")
def fashion_run(tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "fashion"
    code = main(["train", "--dataset", "fashion-mnist", "--data", str(tiny), "--out", str(run),
                 "--hidden", "32", "--epochs", "5", "--valid-size", "50", "--batch-size", "25",
                 "--lr", "0.01", "--no-progress"])
    assert code == 0
    return run


def test_train_records_the_dataset(fashion_run):
    metrics = json.loads((fashion_run / "metrics.json").read_text())
    ds = metrics["dataset"]
    assert ds["name"] == "fashion-mnist" and ds["title"] == "Fashion-MNIST" and ds["verified"] is False
    assert "unverified" in ds["source"] and ds["class_names"][0] == "T-shirt/top"
    assert list(metrics["test"]["per_class"])[9] == "Ankle boot"
    clf = Classifier.load(fashion_run / "model.npz")
    assert clf.dataset == "fashion-mnist" and clf.class_names[1] == "Trouser"
    assert json.loads((fashion_run / "config.json").read_text())["data"]["dataset"] == "fashion-mnist"


def test_evaluate_and_predict_show_class_names(fashion_run, tiny, capsys):
    assert main(["evaluate", str(fashion_run), "--data", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "1 Trouser" in out and "9 Ankle boot" in out and "accuracy:" in out
    assert main(["predict", str(fashion_run), "--index", "0", "--data", str(tiny), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["name"] == clf_names(fashion_run)[result["digit"]]
    assert main(["predict", str(fashion_run), "--index", "0", "--data", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "  0 T-shirt/top: " in out and "test image 0: predicted" in out


def clf_names(run):
    return Classifier.load(run / "model.npz").class_names


def test_dataset_option_chooses_other_test_images(fashion_run, tmp_path, capsys):
    other = write_tiny_mnist(tmp_path / "other", n_test=20, seed=5)
    assert main(["evaluate", str(fashion_run), "--dataset", "mnist", "--data", str(other), "--json"]) == 0
    assert np.asarray(json.loads(capsys.readouterr().out)["confusion_matrix"]).sum() == 20
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(fashion_run), "--dataset", "cifar"])
    assert exc.value.code == 2 and "unknown dataset 'cifar'" in capsys.readouterr().err
    assert main(["predict", str(fashion_run), "--dataset", "mnist", "x.png"]) == 1
    assert "--dataset chooses the test images of --index N" in capsys.readouterr().err


def test_spec_errors_for_datasets_are_one_line(tiny, tmp_path, capsys):
    assert main(["train", "--dataset", "emnist-letters", "--digits", "0,30", "--data", str(tiny),
                 "--out", str(tmp_path / "r")]) == 1
    assert "--digits: emnist-letters has the classes 0..25" in capsys.readouterr().err


def test_report_figures_use_class_names(fashion_run, tiny):
    pytest.importorskip("matplotlib")
    pytest.importorskip("plotly")
    assert main(["report", str(fashion_run), "--data", str(tiny), "--pca-points", "40"]) == 0
    page = (fashion_run / "report.html").read_text()
    assert "Fashion-MNIST test indices" in page and "true fashion item" in page
    assert "Ankle boot" in page and (fashion_run / "confusion.png").stat().st_size > 0


def test_web_page_follows_the_dataset(fashion_run):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from digitnet.web.app import create_app

    client = TestClient(create_app(Classifier.load(fashion_run / "model.npz")))
    page = client.get("/").text
    assert "<h1>Draw a fashion item</h1>" in page and "NumPy, trained on Fashion-MNIST, read it" in page
    assert "<title>digitnet - draw a fashion item</title>" in page
    model = client.get("/api/model").json()
    assert model["dataset"]["title"] == "Fashion-MNIST" and model["class_names"][8] == "Bag"
    answer = client.post("/api/predict", json=[0] * 300 + [255] * 100 + [0] * 384).json()
    assert answer["name"] == model["class_names"][model["classes"].index(answer["digit"])]


def test_format_report_with_long_class_names():
    names = ["T-shirt/top", "Trouser", "Bag"]
    report = classification_report(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), 3, names)
    lines = format_report(report).splitlines()
    assert lines[3].split() == ["0", "1", "2"]  # positions head the columns
    assert lines[4].startswith("0 T-shirt/top") and lines[6].split()[-3:] == ["0", "1", "1"]
