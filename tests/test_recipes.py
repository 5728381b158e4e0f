"""Recipes: the built-in files, the quirk components, data formats and splits, the runner and
``digitnet reproduce``, on small data made here (one smoke test on the real MNIST)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitnet import quirks
from digitnet.cli import main
from digitnet.data.catalog import read_format
from digitnet.data.formats import read_kaggle_submission, write_kaggle_test
from digitnet.errors import SpecError
from digitnet.nn import LOSSES, OPTIMIZERS, ReLU, Sigmoid, SoftmaxCrossEntropy, check_model_gradients, mlp
from digitnet.nn.model import Sequential
from digitnet.prepare import prepare
from digitnet.recipes import Recipe, load_recipe, merge_improved, recipe_names, run_recipe
from digitnet.spec import DataSpec, RunSpec, build
from tests.conftest import requires_mnist
from tests.test_cli import write_tiny_mnist

SEEDS = ["seed-000", "seed-001", "seed-002", "seed-003", "seed-004", "seed-004-relu"]
PLAIN = ["cnn", "cnn-wide", "lenet5", "mlp-best"]  # for `digitnet train --recipe`, not seed experiments


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch) -> Path:
    """Tiny IDX data (600 train, 120 test) and a private cache for built format files."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    return write_tiny_mnist(tmp_path / "idx", n_train=600, n_test=120)


def quiet(_: str) -> None:
    pass


def layer_sizes(spec: RunSpec, n_classes: int = 10) -> list[int]:
    model = build(spec, 784, n_classes, 60000).model
    return [784] + [layer.out_features for layer in model.layers if hasattr(layer, "out_features")]


# --------------------------------------------------------------------------- the recipe files
def test_builtin_recipes_are_all_there_and_keep_the_network_size() -> None:
    assert recipe_names() == sorted(SEEDS + PLAIN)
    assert [name for name in recipe_names() if not load_recipe(name).is_seed] == PLAIN
    for name in SEEDS:
        r = load_recipe(name)
        assert r.name == name and r.is_seed and r.seed["metric"] in ("valid", "test")
        assert 0.8 < r.seed["reported"] < 1
        lo, hi = r.accept
        assert lo <= r.seed["reported"] <= hi
        # improved = same network size, different training
        classes = 2 if r.faithful.data.digits else 10
        assert layer_sizes(r.improved, classes) == layer_sizes(r.faithful, classes)
        assert r.improved.training != r.faithful.training
        assert r.notes and r.improved_notes and r.improved_notes != r.notes


def test_seed_facts_in_the_recipes() -> None:
    s0, s1, s2, s3 = (load_recipe(f"seed-00{i}").faithful for i in range(4))
    assert s0.data.format == "mnist_pkl" and s0.data.digits == (0, 1) and s0.data.normalization == "unit256"
    assert s0.training.epochs == 60 and s0.training.batch_size == 0 and s0.training.optimizer == "fan_in_gd"
    assert all(entry.get("bias") is False for entry in s1.model.layers if entry["type"] == "Linear")
    assert s1.training.momentum == 0.01 and s1.data.eval_normalization == "none"
    assert s2.data.valid_size == 1000 and s2.training.epochs == 500
    assert s2.model.layers[0]["type"] == "ScalarBiasLinear" and s2.training.loss == "unstable_cross_entropy"
    assert s3.training.epochs == 1000 and s3.data.format == "keras"
    assert load_recipe("seed-004").faithful.data.split_seed == 123


def test_unknown_recipe_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="seed-000"):
        load_recipe("seed-999")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[seed]\nmetric = "valid"\n')
    with pytest.raises(SpecError, match="reported figure"):
        load_recipe(bad)
    bad.write_text('name = "x"\n[training]\nlrr = 0.1\n')
    with pytest.raises(SpecError, match="has no setting 'lrr' \\(did you mean 'lr'\\?\\)"):
        load_recipe(bad)
    bad.write_text("name = \n")
    with pytest.raises(SpecError, match="TOML"):
        load_recipe(bad)


def test_the_best_mlp_recipe_is_a_plain_mlp_with_augmentation() -> None:
    spec = load_recipe("mlp-best").faithful
    layers = build(spec, 784, 10, 60000).model.layers
    assert {type(layer).__name__ for layer in layers} <= {"Linear", "ReLU", "Dropout"}
    assert spec.data.valid_size == 0 and {"affine", "elastic"} <= set(spec.data.augment)


def test_a_plain_recipe_trains_but_does_not_reproduce(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text('name = "plain"\n[model]\nhidden = [8]\n[training]\nepochs = 1\n')
    recipe = load_recipe(path)
    assert not recipe.is_seed and recipe.faithful.model.hidden == (8,)
    with pytest.raises(SpecError, match="not a seed experiment"):
        run_recipe(recipe, log=quiet)


# --------------------------------------------------------------------------- quirks
def test_rounded_sigmoid_uses_the_derivative_at_rounded_z() -> None:
    z = np.array([[0.4, 1.6, -2.4, 3.5]], dtype=np.float32)
    layer = quirks.RoundedSigmoid()
    np.testing.assert_allclose(layer.forward(z), 1 / (1 + np.exp(-z)), rtol=1e-6)
    g = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    s = 1 / (1 + np.exp(-np.round(z)))
    np.testing.assert_allclose(layer.backward(g), g * s * (1 - s), rtol=1e-5)
    exact = Sigmoid()
    exact.forward(z)
    assert not np.allclose(exact.backward(g), g * s * (1 - s))


def test_scalar_bias_linear_moves_every_bias_alike() -> None:
    rng = np.random.default_rng(0)
    layer = quirks.ScalarBiasLinear(5, 3, rng=rng)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    layer.forward(x)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    layer.backward(g)
    np.testing.assert_allclose(layer.grads["bias"], np.full(3, g.sum()), rtol=1e-5)
    np.testing.assert_allclose(layer.grads["weight"], x.T @ g, rtol=1e-5)
    assert layer.config()["type"] == "ScalarBiasLinear"
    rebuilt = Sequential.from_config({"layers": [layer.config()]}, dtype=np.float64)
    assert type(rebuilt.layers[0]) is quirks.ScalarBiasLinear
    assert rebuilt.layers[0].dtype == np.float64  # a Linear subclass keeps the model's dtype


def test_fan_in_gd_divides_by_input_width() -> None:
    model = mlp([6, 4, 1], rng=0)
    before = model.state_dict()
    x = np.random.default_rng(1).standard_normal((10, 6)).astype(np.float32)
    loss = LOSSES.create("binary_cross_entropy")
    loss.forward(model.forward(x), (np.arange(10) % 2))
    model.backward(loss.backward())
    grads = {name: g.copy() for name, _, g in model.parameters()}
    opt = OPTIMIZERS.create({"name": "fan_in_gd", "lr": 0.5}, batch_size=10)
    opt.step(model.parameters())
    after = model.state_dict()
    for name, width in (("0.weight", 6), ("0.bias", 6), ("2.weight", 4), ("2.bias", 4)):
        np.testing.assert_allclose(before[name] - after[name], 0.5 * 10 / width * grads[name], rtol=1e-5)


def test_unclipped_bce_matches_the_fused_loss_and_is_unclipped() -> None:
    z = np.array([[-2.0], [0.5], [3.0]], dtype=np.float64)
    y = np.array([0, 1, 1])
    a = 1 / (1 + np.exp(-z))
    seed_loss, fused = LOSSES.create("unclipped_bce"), LOSSES.create("bce")
    assert seed_loss.forward(a, y) == pytest.approx(fused.forward(z, y), rel=1e-9)
    # gradient with respect to a, times da/dz, is the fused gradient with respect to z
    np.testing.assert_allclose(seed_loss.backward() * a * (1 - a), fused.backward(), rtol=1e-9)
    assert seed_loss.forward(np.array([[1.0]]), np.array([0])) == float("inf")


def test_unstable_softmax_matches_until_it_overflows() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 10)).astype(np.float64)
    y = rng.integers(0, 10, 5)
    seed_loss, stable = LOSSES.create("unstable_cross_entropy"), SoftmaxCrossEntropy()
    assert seed_loss.forward(z, y) == pytest.approx(stable.forward(z, y), rel=1e-9)
    np.testing.assert_allclose(seed_loss.backward(), stable.backward(), rtol=1e-9)
    big = z.astype(np.float32) * 1000
    assert not np.isfinite(seed_loss.forward(big, y))
    assert np.isfinite(stable.forward(big, y))


def test_quirk_models_pass_gradient_checks_where_they_are_exact() -> None:
    rng = np.random.default_rng(0)
    u = {"name": "uniform", "low": -0.5, "high": 0.5}
    model = Sequential([quirks.ScalarBiasLinear(8, 5, bias_init=u, rng=rng, dtype=np.float64), ReLU(),
                        quirks.ScalarBiasLinear(5, 3, bias_init=u, rng=rng, dtype=np.float64)])
    x = rng.standard_normal((6, 8))
    errors = check_model_gradients(model, SoftmaxCrossEntropy(), x, np.arange(6) % 3)
    # weights follow the true gradient; the biases get the summed scalar instead
    assert all(err < 1e-5 for name, err in errors.items() if name.endswith("weight"))
    assert all(err > 1e-2 for name, err in errors.items() if name.endswith("bias"))


# --------------------------------------------------------------------------- data
def load(fmt: str, tiny: Path, log=quiet, **data) -> tuple:
    raw = read_format(fmt, tiny, fetch=False, log=log)
    return raw, prepare(DataSpec(format=fmt, **data), raw.parts, seed=0)


@pytest.mark.parametrize("fmt", ["idx", "mnist_pkl", "kaggle", "keras", "openml"])
def test_every_format_is_built_from_idx_and_read_with_its_loader(tiny: Path, fmt: str) -> None:
    messages: list[str] = []
    raw, data = load(fmt, tiny, messages.append, split="file")
    if fmt == "idx":
        assert "IDX" in raw.note
    else:
        assert "built the equivalent" in raw.note and any("building" in m for m in messages)
    n_train = {"idx": 600, "mnist_pkl": 500, "kaggle": 420, "keras": 600, "openml": 617}[fmt]
    assert len(data.x_train) == n_train and data.x_train.dtype == np.uint8  # scaled batch by batch
    if fmt == "mnist_pkl":
        assert len(data.x_valid) == 100 and len(data.x_test) == 120
    # the second time, the built file is reused
    messages.clear()
    _, again = load(fmt, tiny, messages.append, split="file")
    assert not any("building" in m for m in messages)
    np.testing.assert_array_equal(again.x_train, data.x_train)


def test_real_format_file_is_preferred(tiny: Path, tmp_path: Path) -> None:
    from digitnet.data.formats import write_kaggle_train

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (30, 784)).astype(np.uint8), np.arange(30) % 10
    (tiny / "kaggle").mkdir()
    write_kaggle_train(tiny / "kaggle" / "train.csv", x, y)
    raw, data = load("kaggle", tiny, split="shuffle_head", valid_size=5, normalization="none")
    assert "built" not in raw.note and str(tiny / "kaggle" / "train.csv") in raw.note
    assert len(data.x_train) == 25 and len(data.x_valid) == 5
    got = np.concatenate([data.x_train, data.x_valid])
    assert sorted(map(bytes, got.astype(np.uint8))) == sorted(map(bytes, x))


def test_splits_digits_and_seed_scalings(tiny: Path) -> None:
    _, d = load("openml", tiny, split="stratified", test_size=120, valid_size=60, split_seed=123,
                normalization="symmetric")
    assert (len(d.x_train), len(d.x_valid), len(d.x_test)) == (540, 60, 120)
    assert np.array_equal(np.bincount(d.y_valid), np.full(10, 6))
    scaled = d.train_scale.transform(d.x_train)
    assert scaled.min() == -1 and scaled.max() <= 1
    _, b = load("idx", tiny, split="file", digits=(3, 8), normalization="minmax_batched", stat_batch=20,
                eval_normalization="none")
    assert set(b.y_train) == {0, 1} and b.classes == [3, 8]
    assert b.train_scale is None and b.x_train.max() <= 1  # scaled up front, as seed 001 did
    assert b.eval_scale.transform(b.x_test).max() > 1  # test left unscaled, like seed 001
    assert b.normalizer.method == "none"  # and so is the saved model's input
    rows = b.x_train[: len(b.x_train) // 20 * 20].reshape(-1, 20, 784)
    assert np.all(rows.min(axis=0)[rows.max(axis=0) > rows.min(axis=0)] == 0)  # per position, per pixel
    _, c = load("keras", tiny, split="file", normalization="column_zscore")
    cols = c.x_test.reshape(-1, 28, 28)
    np.testing.assert_allclose(cols.mean(axis=(0, 1)), 0, atol=1e-4)  # test set: its own statistics
    assert c.normalizer.method == "zscore" and c.normalizer.per_pixel  # the model: training statistics
    with pytest.raises(ValueError, match="unknown data format"):
        read_format("hdf5", tiny)
    with pytest.raises(SpecError, match="normalization: expected one of unit"):
        DataSpec(normalization="whiten")


# --------------------------------------------------------------------------- the runner
def tiny_recipe(**training) -> Recipe:
    d = {"name": "tiny", "seed": {"metric": "test", "reported": 0.5, "seconds": 10.0},
         "data": {"format": "keras", "split": "file", "normalization": "unit"},
         "model": {"hidden": [16]},
         "training": {"loss": "cross_entropy", "optimizer": "sgd", "lr": 0.1, "schedule": "constant",
                      "batch_size": 50, "epochs": 4, "seed": 0, **training},
         "improved": {"training": {"optimizer": "adam", "lr": 0.01}}}
    return Recipe.from_dict(copy.deepcopy(d))


def test_run_recipe_trains_compares_and_saves_a_run(tiny: Path, tmp_path: Path) -> None:
    r, run = run_recipe(tiny_recipe(), out=tmp_path / "f", data_dir=tiny, log=quiet)
    assert r.variant == "faithful" and r.metric == "test" and r.epochs == 4
    assert r.accuracy > 0.9 and r.run_dir == tmp_path / "f"
    assert not r.ok and "OUT OF RANGE 49.00%-51.00%" in r.line()  # far above the 'seed' figure
    assert "built the equivalent" in r.note
    metrics = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert metrics["recipe"]["accuracy"] == r.accuracy and metrics["recipe"]["ok"] is False
    assert metrics["test_accuracy"] == pytest.approx(r.accuracy)
    i, _ = run_recipe(tiny_recipe(), "improved", out=tmp_path / "i", data_dir=tiny, log=quiet)
    assert i.ok and i.target_epoch is not None and 0 < i.target_seconds <= i.seconds
    assert "reached 50.00%" in i.line() and "faster than the seed's code" in i.line()
    again, run2 = run_recipe(tiny_recipe(), out=tmp_path / "g", data_dir=tiny, log=quiet)
    assert again.accuracy == r.accuracy and run2.history.loss == run.history.loss


def test_faithful_line_flags_out_of_range(tiny: Path, tmp_path: Path) -> None:
    r, _ = run_recipe(tiny_recipe(epochs=1, batch_size=0), out=tmp_path / "r", data_dir=tiny, log=quiet)
    assert r.accept == (0.49, 0.51)
    assert ("in range" in r.line()) == r.ok and ("OUT OF RANGE" in r.line()) != r.ok


def test_seed_000_recipe_runs_on_other_digits(tiny: Path, tmp_path: Path) -> None:
    r, _ = run_recipe("seed-000", "improved", out=tmp_path / "r", data_dir=tiny, fetch=False, digits=[3, 8],
                      log=quiet)
    assert r.reported is None and "n/a" in r.line() and r.accuracy > 0.9
    with pytest.raises(SpecError, match="unclipped_bce needs exactly 2 classes, got 3"):
        run_recipe("seed-000", out=tmp_path / "s", data_dir=tiny, fetch=False, digits=[1, 2, 3], log=quiet)


def test_fan_in_gd_recipe_refuses_unequal_batches(tiny: Path, tmp_path: Path) -> None:
    recipe = load_recipe("seed-000")
    spec = recipe.faithful.replace(batch_size=7)
    recipe = Recipe(recipe.name, recipe.title, recipe.notes, spec, recipe.seed, recipe.improved)
    with pytest.raises(SpecError, match="needs batches of equal size"):
        run_recipe(recipe, out=tmp_path / "r", data_dir=tiny, fetch=False, log=quiet)


@pytest.mark.parametrize("name", ["seed-001", "seed-002"])
def test_a_quirk_model_saved_by_reproduce_loads_evaluates_and_serves_in_a_fresh_process(
        name: str, tiny: Path, tmp_path: Path) -> None:
    """The model file names the module of each quirk component, so nothing depends on what
    the loading process happened to import."""
    run_dir = tmp_path / name
    recipe = load_recipe(name)
    recipe.faithful = recipe.faithful.replace(valid_size=40) if name == "seed-002" else recipe.faithful
    run_recipe(recipe, out=run_dir, data_dir=tiny, fetch=False, epochs=2, log=quiet)
    meta = json.loads(str(np.load(run_dir / "model.npz")["__meta__"]))
    quirky = "layer:RoundedSigmoid" if name == "seed-001" else "layer:ScalarBiasLinear"
    assert meta["components"][quirky] == "digitnet.quirks"
    code = ("import sys, numpy as np\n"
            "from digitnet.classifier import Classifier\n"
            f"clf = Classifier.load({str(run_dir / 'model.npz')!r})\n"
            "assert 'digitnet.quirks' not in sys.modules or True\n"
            "print(clf.predict(np.zeros((2, 784), np.uint8)).tolist())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-m", "digitnet", "evaluate", str(run_dir), "--data", str(tiny)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "accuracy:" in out.stdout, out.stderr
    pytest.importorskip("fastapi")
    import httpx

    from tests.web.helpers import serving

    with serving(run_dir) as url:
        answer = httpx.post(url + "/api/predict", json=[0] * 392 + [255] * 392, timeout=30)
    assert answer.status_code == 200 and 0 <= answer.json()["digit"] <= 9


# --------------------------------------------------------------------------- command line
def test_reproduce_cli(tiny: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text("""name = "tiny"
[seed]
reports = "test 50%"
metric = "test"
reported = 0.5
accept = [0.0, 1.0]
[data]
format = "openml"
split = "stratified"
test_size = 100
normalization = "symmetric"
valid_size = 50
[model]
hidden = [12]
[training]
loss = "cross_entropy"
optimizer = "adam"
lr = 0.01
batch_size = 60
epochs = 3
""")
    run = tmp_path / "runs" / "tiny"
    assert main(["reproduce", str(path), "--data", str(tiny), "--quiet", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny") and "seed test  50.00%" in out and "in range" in out
    assert f"run directory: {run}" in out
    # an ordinary run directory: evaluate, report and compare work on it
    assert main(["evaluate", str(run), "--data", str(tiny)]) == 0
    assert "accuracy:" in capsys.readouterr().out
    assert main(["reproduce", str(path), "--data", str(tiny), "--quiet", "--out", str(run)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["reproduce", "--list"]) == 0
    assert "seed-003" in capsys.readouterr().out
    assert main(["reproduce"]) == 1
    assert "recipe name or --all" in capsys.readouterr().err
    assert main(["reproduce", "seed-002", "--digits", "0,1"]) == 1
    assert "not a binary recipe" in capsys.readouterr().err
    assert main(["reproduce", "seed-000", "--digits", "1,1"]) == 1
    assert "two distinct digits" in capsys.readouterr().err
    assert main(["reproduce", "nope"]) == 1
    assert "unknown recipe" in capsys.readouterr().err


def test_reproduce_all_writes_the_table_and_runs(tiny: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import digitnet.recipes as recipes

    monkeypatch.setattr(recipes, "recipe_names", lambda: ["seed-002"])
    real = recipes.run_recipe

    def short(name, variant, **kw):  # the real recipe, 3 epochs, on tiny data
        recipe = load_recipe(name)
        recipe.faithful = recipe.faithful.replace(valid_size=40)
        recipe.improved = recipe.improved.replace(valid_size=40)
        return real(recipe, variant, epochs=3, **kw)

    monkeypatch.setattr(recipes, "run_recipe", short)
    table = tmp_path / "docs" / "reproduction.md"
    code = main(["reproduce", "--all", "--data", str(tiny), "--table", str(table), "--quiet",
                 "--out", str(tmp_path / "runs")])
    text = table.read_text()
    assert "| seed-002 | valid 83.00% |" in text and "Kaggle" in text
    assert "### seed-002" in text and "scalar" in text
    assert {p.name for p in (tmp_path / "runs").iterdir()} == {"seed-002-faithful", "seed-002-improved"}
    printed = capsys.readouterr().out
    assert "table written to" in printed and code == (0 if "every target met" in printed else 1)


def test_predict_kaggle_writes_submission(tiny: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--hidden", "32", "--epochs", "4",
                 "--valid-size", "50", "--batch-size", "25", "--lr", "0.01", "--no-progress"]) == 0
    from digitnet.data import load_mnist

    ds = load_mnist(tiny, progress=False)
    write_kaggle_test(tmp_path / "test.csv", ds.x_test)
    sub = tmp_path / "submission.csv"
    assert main(["predict", str(run), "--kaggle", str(tmp_path / "test.csv"), "--out", str(sub)]) == 0
    assert "wrote 120 predictions" in capsys.readouterr().out
    labels = read_kaggle_submission(sub)
    assert len(labels) == 120 and np.mean(labels == ds.y_test) > 0.9
    assert main(["predict", str(run), "--kaggle", str(tmp_path / "test.csv")]) == 1
    assert "needs --out" in capsys.readouterr().err
    assert main(["predict", str(run), "--kaggle", str(tmp_path / "test.csv"),
                 "--out", str(tmp_path / "test.csv")]) == 1
    assert "overwrite" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    before = sub.read_bytes()
    assert main(["predict", str(run), "--kaggle", str(tmp_path / "bad.csv"), "--out", str(sub)]) == 1
    assert "not a Kaggle test.csv" in capsys.readouterr().err
    assert sub.read_bytes() == before  # nothing lost


@requires_mnist
def test_seed_003_improved_on_real_mnist(tmp_path: Path, monkeypatch) -> None:
    """Smoke test: the real data through the Keras format, one epoch of the improved recipe."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    r, _ = run_recipe("seed-003", "improved", out=tmp_path / "run", epochs=1, log=quiet)
    assert "Keras mnist.npz" in r.note
    assert r.accuracy > 0.9 and r.ok


def test_speedup_wording() -> None:
    from digitnet.recipes.runner import times

    assert times(154.2) == "154x faster"
    assert times(1.46) == "1.5x faster"
    assert times(0.5) == "2.0x slower"
    assert times(None) == ""


def test_improved_variant_drops_the_options_of_a_component_it_replaces():
    base = {"training": {"loss": "mse", "reduction": "sample", "optimizer": "sgd", "momentum": 0.5,
                         "epochs": 5},
            "model": {"layers": [{"type": "Linear", "out_features": 10}]}}
    out = merge_improved(base, {"training": {"loss": "cross_entropy", "optimizer": "sgd"},
                                "model": {"hidden": [8]}})
    assert out["training"] == {"loss": "cross_entropy", "optimizer": "sgd", "momentum": 0.5, "epochs": 5}
    assert out["model"] == {"hidden": [8]}
    assert base["training"]["reduction"] == "sample"  # the faithful recipe is untouched
