"""Robustness: each perturbation at its neutral strength changes nothing, stronger ones change
more; ``evaluate --robustness``; and saying "not sure" below a confidence threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitnet.cli import main
from digitnet.robustness import NEUTRAL, PERTURBATIONS, format_table, mean_accuracy, perturb, robustness
from tests.test_cli import write_tiny_mnist


def strokes(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        r, c = rng.integers(8, 14, 2)
        x[i, r:r + 10, c:c + 4] = 255
        x[i, r:r + 3, c:c + 9] = 255
    return x.reshape(n, -1)


@pytest.mark.parametrize("kind", list(PERTURBATIONS))
def test_the_neutral_strength_changes_nothing_and_stronger_changes_more(kind):
    x = strokes()
    np.testing.assert_allclose(perturb(x, kind, NEUTRAL[kind]), x, atol=1e-3)
    strengths = [s for s in PERTURBATIONS[kind][1] if s != NEUTRAL[kind]]
    changes = [float(np.abs(perturb(x, kind, s) - x).mean()) for s in strengths]
    assert min(changes) > 0
    out = perturb(x, kind, strengths[-1])
    assert out.shape == x.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255


def test_perturbations_are_repeatable():
    x = strokes()
    for kind in ("shift", "noise", "occlusion"):
        np.testing.assert_array_equal(perturb(x, kind, PERTURBATIONS[kind][1][-1]),
                                      perturb(x, kind, PERTURBATIONS[kind][1][-1]))


def test_robustness_results_and_table():
    def predict(images):  # "more ink on the left half"
        img = images.reshape(len(images), 28, 28)
        return (img[:, :, :14].sum(axis=(1, 2)) > img[:, :, 14:].sum(axis=(1, 2))).astype(int)

    x = strokes(40)
    results = robustness(predict, x, predict(x), kinds=("rotation", "inversion"))
    assert results["n_images"] == 40 and set(results["perturbations"]) == {"rotation", "inversion"}
    rot = results["perturbations"]["rotation"]
    assert rot["accuracy"][0] == 1.0 and len(rot["accuracy"]) == len(rot["strengths"])
    assert "rotation" in format_table(results) and 0 <= mean_accuracy(results) <= 1
    json.dumps(results)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    data = write_tiny_mnist(tmp_path_factory.mktemp("tiny"), n_train=400, n_test=80)
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--hidden", "32", "--epochs", "4",
                 "--valid-size", "50", "--batch-size", "25", "--lr", "0.01", "--no-progress"]) == 0
    return run, data


def test_evaluate_robustness_writes_the_numbers_and_the_figure(tiny_run, capsys):
    pytest.importorskip("matplotlib")
    run, data = tiny_run
    assert main(["evaluate", str(run), "--data", str(data), "--robustness"]) == 0
    out = capsys.readouterr().out
    assert "robustness on 80 test images" in out and "occlusion" in out
    saved = json.loads((run / "robustness.json").read_text())
    assert set(saved["perturbations"]) == set(PERTURBATIONS)
    assert (run / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", str(run), "--data", str(data), "--robustness", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["robustness"]["n_images"] == 80


def test_predict_says_not_sure_below_the_threshold(tiny_run, capsys):
    run, data = tiny_run
    capsys.readouterr()
    assert main(["predict", str(run), "--index", "0", "--data", str(data), "--min-confidence", "1.0"]) == 0
    assert "test image 0: not sure (best guess" in capsys.readouterr().out
    assert main(["predict", str(run), "--index", "0", "--data", str(data), "--min-confidence", "1.0",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["digit"] is None and result["sure"] is False and 0 <= result["best_guess"] <= 9
    assert main(["predict", str(run), "--index", "0", "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sure"] is True and result["digit"] == result["best_guess"]
