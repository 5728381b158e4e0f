"""The command line end to end on tiny data in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from digitnet.cli import main
from digitnet.data import write_idx


def write_tiny_mnist(directory, n_train=300, n_test=60, seed=0):
    """Four IDX files of learnable 28x28 'digits': each class lights its own rows."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            x[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 250
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return directory


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    code = main(["train", "--data", str(tiny), "--out", str(run), "--hidden", "32",
                 "--epochs", "6", "--valid-size", "50", "--batch-size", "25", "--lr", "0.01",
                 "--no-progress"])
    assert code == 0
    return run


def test_train_writes_run_directory(trained):
    assert {"model.npz", "config.json", "metrics.json"} <= {p.name for p in trained.iterdir()}
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9
    assert metrics["epochs"] == 6 and metrics["train_seconds"] > 0
    assert metrics["dataset"]["verified"] is False and metrics["dataset"]["n_train"] == 300
    assert len(metrics["history"]["val_accuracy"]) == 6
    assert set(metrics["history"]) >= {"loss", "train_accuracy", "val_accuracy", "seconds"}
    config = json.loads((trained / "config.json").read_text())
    assert config["model"]["hidden"] == [32] and config["training"]["seed"] == 0


def test_evaluate_prints_report(trained, tiny, capsys):
    assert main(["evaluate", str(trained / "model.npz"), "--data", str(tiny)]) == 0
    out = capsys.readouterr().out
    assert "accuracy:" in out and "confusion matrix" in out and "precision" in out


def test_evaluate_json(trained, tiny, capsys):
    assert main(["evaluate", str(trained), "--data", str(tiny), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert np.asarray(report["confusion_matrix"]).sum() == 60


def test_predict_index(trained, tiny, capsys):
    assert main(["predict", str(trained), "--index", "3", "--data", str(tiny), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["digit"] <= 9 and len(result["probabilities"]) == 10
    assert sum(result["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert main(["predict", str(trained), "--index", "3", "--data", str(tiny)]) == 0
    assert "test image 3: predicted" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["predict", "MODEL", "--index", "999"], "out of range"),
    (["predict", "/nonexistent/model.npz", "--index", "0"], "no such file"),
    (["train", "--hidden", "32", "--dropout", "1.5"], "--dropout: must be < 1, got 1.5"),
    (["train", "--loss", "binary_cross_entropy"],
     "--loss: binary cross-entropy needs exactly 2 classes, got 10; choose two digits"),
    (["train", "--digits", "3,3"], "--digits: values must be distinct"),
    (["train", "--momentum", "0.9"], "--momentum: does not apply to the adam optimizer"),
])
def test_bad_arguments_give_one_line_errors(argv, message, trained, tiny, capsys):
    argv = [str(trained) if a == "MODEL" else a for a in argv] + ["--data", str(tiny)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    err = "\n".join(line for line in err.splitlines() if not line.startswith("digitnet: note:"))  # tiny data
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_data_directory_is_explained(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and "Traceback" not in err


def test_parse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--hidden", "a,b"])
    assert exc.value.code == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_binary_digits_training(tiny, tmp_path):
    run = tmp_path / "bin"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--digits", "0,1",
                 "--loss", "binary_cross_entropy", "--hidden", "8", "--epochs", "10",
                 "--valid-size", "10", "--batch-size", "10", "--lr", "0.01",
                 "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"]["classes"] == [0, 1]
    assert metrics["test_accuracy"] == 1.0


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "digitnet.cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("digitnet ")


def test_predict_needs_exactly_one_source(trained, tiny, capsys):
    assert main(["predict", str(trained), "--data", str(tiny)]) == 1
    assert "exactly one of" in capsys.readouterr().err
    assert main(["predict", str(trained), "--index", "0", "--out", "x.csv", "--data", str(tiny)]) == 1
    assert "exactly one of" not in capsys.readouterr().err
