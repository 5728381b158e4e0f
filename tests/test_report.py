"""The run report end to end (``digitnet train --report``, ``report``, ``compare``), metrics
validation, and the NumPy PCA."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from digitnet.cli import main
from digitnet.data import load_mnist
from digitnet.pca import PCA
from tests.test_cli import write_tiny_mnist

pytest.importorskip("matplotlib")
pytest.importorskip("plotly")

from digitnet import plots, report  # noqa: E402
from digitnet.report.compare import compare_output_path  # noqa: E402
from digitnet.report.figures import confident_mistakes  # noqa: E402
from digitnet.runs import RunError, validate_metrics  # noqa: E402

SECTIONS = ("summary", "history", "confusion", "precision-recall", "mistakes", "samples", "weights",
            "risk-coverage", "diagnostics", "robustness", "pca")
FIGURES = ("history.png", "confusion.png", "precision_recall.png", "mistakes.png", "samples.png",
           "weights.png", "risk_coverage.png", "diagnostics.png", "robustness.png")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny"), n_train=300, n_test=100)


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    """A run directory written by ``digitnet train`` (no report yet)."""
    path = tmp_path_factory.mktemp("runs") / "ten"
    assert main(["train", "--data", str(tiny), "--out", str(path), "--hidden", "24,12", "--epochs", "3",
                 "--valid-size", "50", "--batch-size", "25", "--lr", "0.01", "--no-progress"]) == 0
    return path


@pytest.fixture(scope="module")
def reported(run, tiny):
    """``digitnet report RUN`` on that run; returns the run directory and its report.html text."""
    assert main(["report", str(run), "--data", str(tiny), "--pca-points", "80"]) == 0
    return run, (run / "report.html").read_text(encoding="utf-8")


def test_report_writes_every_figure(reported):
    run, _ = reported
    for name in FIGURES:
        data = (run / name).read_bytes()
        assert plots.png_size(data)[0] > 200, name
    assert plots.png_size((run / "history.png").read_bytes()) == (1100, 420)
    assert plots.png_size((run / "confusion.png").read_bytes()) == (860, 710)


def test_html_has_every_section_and_embeds_its_images(reported):
    run, page = reported
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
        assert f'href="#{section}"' in page, section
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(FIGURES)
    assert {base64.b64decode(e) for e in embedded} == {(run / f).read_bytes() for f in FIGURES}


def test_html_is_self_contained_with_both_pca_plots(reported):
    _, page = reported
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs()[:2000] in page  # plotly.js itself is inlined, once
    assert page.count(get_plotlyjs()[:2000]) == 1
    rest = page.replace(get_plotlyjs(), "")  # the library mentions its CDN; the page must not
    assert not re.search(r"<script[^>]+src=", rest) and "cdn.plot.ly" not in rest
    assert not re.search(r'<(img|link|iframe)[^>]+(src|href)="https?:', rest)
    assert 'id="pca-0"' in page and 'id="pca-1"' in page
    assert "Test images (raw pixels)" in page and "Last hidden layer's activations (12 units)" in page
    for digit in range(10):
        assert f'"name":"digit {digit}"' in page


def test_html_tables_show_configuration_and_metrics(reported):
    run, page = reported
    metrics = json.loads((run / "metrics.json").read_text())
    assert "Final metrics" in page and "Run spec (config.json)" in page
    assert f"<th scope=\"row\">test accuracy</th><td>{metrics['test_accuracy']:.4f}</td>" in page
    assert "<th scope=\"row\">model.hidden</th><td>24, 12</td>" in page
    assert "<th scope=\"row\">epochs</th><td>3</td>" in page
    per_class = metrics["test"]["per_class"]["7"]
    assert (f"<th scope=\"row\">7</th><td>{per_class['precision']:.4f}</td>"
            f"<td>{per_class['recall']:.4f}</td>") in page


def test_train_with_report_on_a_binary_model(tiny, tmp_path, capsys):
    run = tmp_path / "bin"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--digits", "3,8",
                 "--loss", "binary_cross_entropy", "--hidden", "8", "--epochs", "2",
                 "--valid-size", "10", "--batch-size", "10", "--lr", "0.01", "--no-progress",
                 "--report"]) == 0
    out = capsys.readouterr().out
    assert f"report: {run / 'report.html'}" in out
    page = (run / "report.html").read_text(encoding="utf-8")
    assert '"name":"digit 3"' in page and '"name":"digit 8"' in page and '"name":"digit 0"' not in page
    # hover texts name the image's index in the whole MNIST test set, usable with predict --index
    labels = load_mnist(tiny, progress=False).y_test
    hovers = re.findall(r"MNIST test image (\d+): digit (\d)", page)
    assert len(hovers) == 2 * np.isin(labels, [3, 8]).sum() > 0  # two PCA plots
    assert all(labels[int(i)] == int(d) for i, d in hovers)
    assert plots.png_size((run / "confusion.png").read_bytes()) == (480, 420)  # 2x2
    assert plots.png_size((run / "samples.png").read_bytes())[1] == round(100 * (0.85 * 2 + 0.7))


def test_report_without_hidden_layer(tiny, tmp_path):
    run = tmp_path / "linear"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--hidden", "none", "--epochs", "1",
                 "--valid-size", "0", "--no-progress"]) == 0
    result = report.write_report(run, data_dir=tiny, pca_points=50)
    page = result.html.read_text(encoding="utf-8")
    assert 'id="pca-0"' in page and 'id="pca-1"' not in page
    assert any("no hidden layer" in n for n in result.notes)
    assert plots.png_size((run / "weights.png").read_bytes()) == (960, 330)  # 10 output units


def test_report_notes_data_that_differ_from_the_run(run, tmp_path):
    other = write_tiny_mnist(tmp_path / "other", n_train=20, n_test=40, seed=5)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["test_accuracy"] = 0.5
    (copy / "metrics.json").write_text(json.dumps(metrics))
    result = report.write_report(copy, data_dir=other, pca_points=30)
    assert any("metrics.json recorded 0.5000" in n for n in result.notes)


# --------------------------------------------------------------------------- bad run directories
def good_metrics() -> dict:
    return {"test_accuracy": 0.9, "epochs": 2,
            "history": {"epoch": [1, 2], "loss": [0.5, 0.4], "train_accuracy": [0.8, 0.9],
                        "val_loss": [0.6, 0.5], "val_accuracy": [0.85, 0.88], "best_epoch": 2}}


def broken(key: str, value) -> dict:
    m = good_metrics()
    target = m["history"] if key.startswith("history.") else m
    name = key.removeprefix("history.")
    if value is KeyError:
        del target[name]
    else:
        target[name] = value
    return m


@pytest.mark.parametrize("metrics,message", [
    (broken("test_accuracy", KeyError), "'test_accuracy' is missing"),
    (broken("test_accuracy", "high"), "'test_accuracy' must be a number between 0 and 1"),
    (broken("test_accuracy", 1.5), "between 0 and 1"),
    (broken("epochs", 0), "'epochs' must be a positive integer"),
    (broken("history", KeyError), "'history' (the per-epoch record) is missing"),
    (broken("history", [1, 2]), "'history' must be an object"),
    (broken("history.val_accuracy", KeyError), "'history.val_accuracy' is missing"),
    (broken("history.loss", "0.5"), "'history.loss' must be a list of numbers"),
    (broken("history.train_accuracy", [0.8, None]), "'history.train_accuracy' must be a list of numbers"),
    (broken("history.val_loss", [0.6]), "'history.val_loss' has 1 values but 'history.loss' has 2"),
    (broken("history.best_epoch", "two"), "'history.best_epoch' must be an epoch number 1-2 or null"),
    (broken("history.best_epoch", 3), "'history.best_epoch' must be an epoch number 1-2 or null"),
    ([1, 2, 3], "expected a JSON object"),
])
def test_validate_metrics_names_the_problem(metrics, message):
    with pytest.raises(RunError, match=re.escape(message)) as exc:
        validate_metrics(metrics, "run/metrics.json")
    assert str(exc.value).startswith("run/metrics.json: malformed metrics: ")


def test_validate_metrics_accepts_a_good_file_and_nan():
    m = good_metrics()
    m["history"]["val_loss"] = [float("nan"), float("nan")]
    assert validate_metrics(m)["epochs"] == 2
    m["test_accuracy"] = None  # a run whose data had no test split
    assert validate_metrics(m)["test_accuracy"] is None


@pytest.mark.parametrize("content,message", [
    (None, "metrics.json: no such file"),
    ('{"test_accuracy": 0.9,', "metrics.json: not valid JSON"),
    ("[]", "metrics.json: expected a JSON object, found list"),
    ('{"test_accuracy": 0.9, "epochs": 1}', "malformed metrics: 'history' (the per-epoch record) is missing"),
])
def test_report_cli_gives_one_line_errors(run, tmp_path, capsys, content, message):
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    (bad / "metrics.json").unlink()
    (bad / "report.html").unlink(missing_ok=True)
    if content is not None:
        (bad / "metrics.json").write_text(content)
    assert main(["report", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitnet report: error: ") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (bad / "report.html").exists()


def test_report_cli_missing_directory_and_model(run, tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    assert "no such run directory" in capsys.readouterr().err
    bad = tmp_path / "nomodel"
    shutil.copytree(run, bad)
    (bad / "model.npz").unlink()
    assert main(["report", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "model.npz: no such file" in err and len(err.strip().splitlines()) == 1


def test_report_without_plotting_packages_says_what_to_install(run):
    code = ("import sys; sys.modules['matplotlib'] = None; from digitnet.cli import main; "
            f"sys.exit(main(['report', {str(run)!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert "pip install 'digitnet[plots]'" in out.stderr and "Traceback" not in out.stderr


# --------------------------------------------------------------------------- compare
def test_compare_tabulates_and_writes_the_figure(run, tiny, tmp_path, capsys, monkeypatch):
    second = tmp_path / "second"
    assert main(["train", "--data", str(tiny), "--out", str(second), "--hidden", "8", "--epochs", "2",
                 "--valid-size", "50", "--optimizer", "sgd", "--lr", "0.05", "--no-progress"]) == 0
    assert main(["evaluate", str(second), "--data", str(tiny), "--robustness"]) == 0
    assert (second / "robustness.json").is_file() and (second / "robustness.png").is_file()
    (run / "robustness.json").unlink(missing_ok=True)  # one run measured, one not
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(run), str(second)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"note: no robustness measured for {run.name} (digitnet evaluate RUN --robustness)"
    assert printed[-1] == f"robustness figure: {tmp_path / 'compare-robustness.png'}"
    out = printed[1:-1]
    assert out[0].split()[:4] == ["run", "hidden", "activation", "optimizer"]
    rows = {line.split()[0]: line.split() for line in out[2:4]}
    assert rows["ten"][1:4] == ["24-12", "relu", "adam"] and rows["second"][1:4] == ["8", "relu", "sgd"]
    metrics = json.loads((second / "metrics.json").read_text())
    assert f"{metrics['test_accuracy']:.4f}" in " ".join(rows["second"])
    assert out[-1] == f"figure: {tmp_path / 'compare.png'}"
    assert plots.png_size((tmp_path / "compare.png").read_bytes()) == (1100, 465)

    assert main(["compare", str(run), str(second), "--out", str(tmp_path / "figs"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in data["runs"]] == ["ten", "second"]
    assert data["runs"][0]["hidden"] == [24, 12] and data["runs"][1]["lr"] == 0.05
    assert data["runs"][1]["test acc"] == metrics["test_accuracy"]
    assert data["runs"][0]["robust acc"] is None and 0 < data["runs"][1]["robust acc"] < 1
    assert (tmp_path / "figs" / "compare.png").is_file()
    assert compare_output_path(tmp_path / "c.png") == tmp_path / "c.png"


def test_compare_rejects_a_malformed_run(run, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{}")
    assert main(["compare", str(run), str(bad), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "'test_accuracy' is missing" in err and not (tmp_path / "compare.png").exists()


def test_confident_mistakes_order():
    y_true = np.array([1, 2, 3, 4, 5])
    y_pred = np.array([1, 7, 3, 9, 0])
    conf = np.array([0.99, 0.6, 0.9, 0.95, 0.6])
    assert confident_mistakes(y_true, y_pred, conf, k=2).tolist() == [3, 1]
    assert confident_mistakes(y_true, y_true, conf).size == 0


# --------------------------------------------------------------------------- PCA
def test_pca_matches_scikit_learn():
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12)) + 3.0
    ours = PCA(3).fit(x)
    theirs = decomposition.PCA(3, svd_solver="full").fit(x)
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(ours.components_), np.abs(theirs.components_), atol=1e-8)
    np.testing.assert_allclose(np.abs(ours.transform(x)), np.abs(theirs.transform(x)), atol=1e-8)


def test_pca_axes_are_orthonormal_and_reconstruct():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6))
    pca = PCA(6).fit(x)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(pca.inverse_transform(pca.transform(x)), x, atol=1e-10)
    assert pca.explained_variance_ratio_.sum() == pytest.approx(1.0)
    assert np.all(np.diff(pca.explained_variance_) <= 0)
    z = pca.transform(x)
    np.testing.assert_allclose(z.var(axis=0, ddof=1), pca.explained_variance_, rtol=1e-10)
    # the sign convention makes each axis's largest coefficient positive
    assert np.all(pca.components_[np.arange(6), np.abs(pca.components_).argmax(axis=1)] > 0)


def test_pca_finds_the_direction_of_largest_spread():
    rng = np.random.default_rng(2)
    t = rng.normal(size=300)
    x = np.c_[t * 10, rng.normal(size=300) * 0.1, rng.normal(size=300) * 0.1]
    pca = PCA(1).fit(x)
    np.testing.assert_allclose(pca.components_[0], [1.0, 0.0, 0.0], atol=0.01)
    assert pca.explained_variance_ratio_[0] > 0.99


@pytest.mark.parametrize("x,k,message", [
    (np.ones((5, 3)), 4, "more than min"),
    (np.ones((1, 3)), 1, "at least 2 samples"),
    (np.ones(5), 1, "2-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), 1, "NaN"),
])
def test_pca_rejects_bad_input(x, k, message):
    with pytest.raises(ValueError, match=message):
        PCA(k).fit(x)
    with pytest.raises(ValueError, match="n_components"):
        PCA(0)
    with pytest.raises(RuntimeError, match="not fitted"):
        PCA(2).transform(np.ones((3, 3)))
