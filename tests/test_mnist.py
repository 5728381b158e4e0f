"""Integration on the real MNIST (skipped unless DIGITNET_DATA points at it)."""

from __future__ import annotations

import json

import pytest

from digitnet.cli import main
from digitnet.data import load_mnist
from digitnet.experiment import run_training
from digitnet.spec import RunSpec
from tests.conftest import mnist_dir, requires_mnist

pytestmark = [requires_mnist, pytest.mark.mnist]


def test_short_run_exceeds_95_percent(tmp_path):
    spec = RunSpec().replace(hidden=(128,), epochs=2, valid_size=5000)
    result = run_training(spec, out=tmp_path / "run", data_dir=mnist_dir(), progress=False,
                          log=lambda _: None)
    assert result.metrics["test_accuracy"] > 0.95
    assert result.metrics["dataset"]["verified"] is True
    assert load_mnist(mnist_dir(), progress=False).x_test.shape == (10000, 784)


def test_cli_train_then_evaluate_on_real_mnist(tmp_path, capsys):
    run = tmp_path / "cli"
    assert main(["train", "--hidden", "64", "--epochs", "1", "--out", str(run),
                 "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9
    assert metrics["dataset"]["n_test"] == 10000
    assert main(["predict", str(run), "--index", "0"]) == 0
    assert "test image 0: predicted 7" in capsys.readouterr().out
