"""Integration on the real MNIST (skipped unless DIGITNET_DATA points at it)."""

from __future__ import annotations

import json

import pytest

from digitnet.cli import main
from digitnet.data import load_mnist
from digitnet.experiment import TrainConfig, run_training
from tests.conftest import mnist_dir, requires_mnist

pytestmark = [requires_mnist, pytest.mark.mnist]


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(mnist_dir(), fetch=False, progress=False)


def test_short_run_exceeds_95_percent(mnist, tmp_path):
    config = TrainConfig(hidden=(128,), epochs=2, valid_size=5000)
    result = run_training(config, dataset=mnist, out_dir=tmp_path / "run", progress=False,
                          log=lambda _: None)
    assert result.metrics["test_accuracy"] > 0.95
    assert result.metrics["dataset"]["verified"] is True


def test_cli_train_then_evaluate_on_real_mnist(tmp_path, capsys):
    run = tmp_path / "cli"
    assert main(["train", "--hidden", "64", "--epochs", "1", "--out", str(run),
                 "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9
    assert metrics["dataset"]["n_test"] == 10000
    assert main(["predict", str(run), "--index", "0"]) == 0
    assert "test image 0: predicted 7" in capsys.readouterr().out
