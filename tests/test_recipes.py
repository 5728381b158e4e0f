"""Recipes: the built-in files, the quirk pieces, data formats and splits, the runner and
``digitnet reproduce``, on small data made here (one smoke test on the real MNIST)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from digitnet.cli import main
from digitnet.data.formats import read_kaggle_submission, write_kaggle_test
from digitnet.nn import ReLU, Sigmoid, SoftmaxCrossEntropy, check_model_gradients
from digitnet.nn.model import Sequential
from digitnet.recipes import build_model, load_recipe, quirks, recipe_names, run_recipe
from digitnet.recipes.data import load_recipe_data
from digitnet.recipes.runner import Recipe
from tests.conftest import requires_mnist
from tests.test_cli import write_tiny_mnist

SEEDS = ["seed-000", "seed-001", "seed-002", "seed-003", "seed-004", "seed-004-relu"]


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch) -> Path:
    """Tiny IDX data (600 train, 120 test) and a private cache for built format files."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    return write_tiny_mnist(tmp_path / "idx", n_train=600, n_test=120)


def quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- the recipe files
def test_builtin_recipes_are_all_there_and_keep_the_network_size() -> None:
    assert recipe_names() == SEEDS
    for name in SEEDS:
        r = load_recipe(name)
        assert r.name == name and r.seed["metric"] in ("valid", "test")
        assert 0.8 < r.seed["reported"] < 1
        lo, hi = r.accept
        assert lo <= r.seed["reported"] <= hi
        # improved = same network size, different training
        assert r.improved["model"]["sizes"] == r.faithful["model"]["sizes"]
        assert r.improved["training"] != r.faithful["training"]
        assert r.faithful["notes"] and r.improved["notes"] != r.faithful["notes"]
        build_model(r.faithful["model"])
        build_model(r.improved["model"])


def test_seed_facts_in_the_recipes() -> None:
    s0, s1, s2, s3 = (load_recipe(f"seed-00{i}") for i in range(4))
    assert s0.faithful["data"]["format"] == "mnist_pkl" and s0.faithful["data"]["digits"] == [0, 1]
    assert s0.faithful["training"]["epochs"] == 60 and s0.faithful["training"]["batch_size"] == 0
    assert s1.faithful["model"]["bias"] is False and s1.faithful["training"]["optimizer"]["momentum"] == 0.01
    assert s1.faithful["data"]["eval_normalization"] == "none"
    assert s2.faithful["data"]["valid_size"] == 1000 and s2.faithful["training"]["epochs"] == 500
    assert s3.faithful["training"]["epochs"] == 1000 and s3.faithful["data"]["format"] == "keras"
    assert load_recipe("seed-004").faithful["data"]["split_seed"] == 123


def test_unknown_recipe_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed-000"):
        load_recipe("seed-999")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[seed]\nmetric = "valid"\n')
    with pytest.raises(ValueError, match="lacks data, model, training"):
        load_recipe(bad)
    bad.write_text("name = \n")
    with pytest.raises(ValueError, match="TOML"):
        load_recipe(bad)


def test_build_model_per_layer_settings() -> None:
    spec = {"sizes": [784, 100, 10], "activations": ["rounded_sigmoid", "sigmoid"], "bias": False,
            "weight_init": [{"name": "normal", "std": 1.0}, {"name": "normal", "std": 0.01}]}
    model = build_model(spec, seed=0)
    names = [type(layer).__name__ for layer in model.layers]
    assert names == ["Linear", "RoundedSigmoid", "Linear", "Sigmoid"]
    assert all("bias" not in layer.params for layer in model.layers)
    assert abs(model.layers[0].params["weight"].std() - 1.0) < 0.02
    assert abs(model.layers[2].params["weight"].std() - 0.01) < 0.001
    with pytest.raises(ValueError, match="2 Linear layers"):
        build_model({**spec, "activations": ["relu"]})
    with pytest.raises(ValueError, match="unknown activation"):
        build_model({**spec, "activations": ["relu", "swish"]})
    a, b = build_model(spec, seed=4), build_model(spec, seed=4)
    np.testing.assert_array_equal(a.layers[0].params["weight"], b.layers[0].params["weight"])


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
    rebuilt = Sequential.from_config({"layers": [layer.config()]})
    assert type(rebuilt.layers[0]) is quirks.ScalarBiasLinear


def test_fan_in_gd_divides_by_input_width() -> None:
    model = build_model({"sizes": [6, 4, 1], "activations": ["relu", "none"]}, seed=0)
    before = model.state_dict()
    x = np.random.default_rng(1).standard_normal((10, 6)).astype(np.float32)
    loss = quirks.make_loss("binary_cross_entropy")
    loss.forward(model.forward(x), (np.arange(10) % 2))
    model.backward(loss.backward())
    grads = {name: g.copy() for name, _, g in model.parameters()}
    opt = quirks.make_optimizer({"name": "fan_in_gd", "lr": 0.5}, samples=10)
    opt.step(model.parameters())
    after = model.state_dict()
    for name, width in (("0.weight", 6), ("0.bias", 6), ("2.weight", 4), ("2.bias", 4)):
        np.testing.assert_allclose(before[name] - after[name], 0.5 * 10 / width * grads[name], rtol=1e-5)


def test_unclipped_bce_matches_the_fused_loss_and_is_unclipped() -> None:
    z = np.array([[-2.0], [0.5], [3.0]], dtype=np.float64)
    y = np.array([0, 1, 1])
    a = 1 / (1 + np.exp(-z))
    seed_loss, fused = quirks.make_loss("unclipped_bce"), quirks.make_loss("bce")
    assert seed_loss.forward(a, y) == pytest.approx(fused.forward(z, y), rel=1e-9)
    # gradient with respect to a, times da/dz, is the fused gradient with respect to z
    np.testing.assert_allclose(seed_loss.backward() * a * (1 - a), fused.backward(), rtol=1e-9)
    assert seed_loss.forward(np.array([[1.0]]), np.array([0])) == float("inf")


def test_unstable_softmax_matches_until_it_overflows() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 10)).astype(np.float64)
    y = rng.integers(0, 10, 5)
    seed_loss, stable = quirks.make_loss("unstable_cross_entropy"), SoftmaxCrossEntropy()
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
@pytest.mark.parametrize("fmt", ["idx", "mnist_pkl", "kaggle", "keras", "openml"])
def test_every_format_is_built_from_idx_and_read_with_its_loader(tiny: Path, fmt: str) -> None:
    messages: list[str] = []
    data = load_recipe_data({"format": fmt, "normalization": "unit"}, data_dir=tiny, fetch=False,
                            log=messages.append)
    if fmt == "idx":
        assert "IDX" in data.note
    else:
        assert "built the equivalent" in data.note and any("building" in m for m in messages)
    n_train = {"idx": 600, "mnist_pkl": 500, "kaggle": 420, "keras": 600, "openml": 617}[fmt]
    assert len(data.x_train) == n_train and data.x_train.dtype == np.float32
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    if fmt == "mnist_pkl":
        assert len(data.x_valid) == 100 and len(data.x_test) == 120
    # the second time, the built file is reused
    messages.clear()
    again = load_recipe_data({"format": fmt, "normalization": "unit"}, data_dir=tiny, fetch=False,
                             log=messages.append)
    assert not any("building" in m for m in messages)
    np.testing.assert_array_equal(again.x_train, data.x_train)


def test_real_format_file_is_preferred(tiny: Path, tmp_path: Path) -> None:
    from digitnet.data.formats import write_kaggle_train

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (30, 784)).astype(np.uint8), np.arange(30) % 10
    (tiny / "kaggle").mkdir()
    write_kaggle_train(tiny / "kaggle" / "train.csv", x, y)
    data = load_recipe_data({"format": "kaggle", "split": "shuffle_head", "valid_size": 5,
                             "normalization": "none"}, data_dir=tiny, log=quiet)
    assert "built" not in data.note and str(tiny / "kaggle" / "train.csv") in data.note
    assert len(data.x_train) == 25 and len(data.x_valid) == 5
    got = np.concatenate([data.x_train, data.x_valid])
    assert sorted(map(bytes, got.astype(np.uint8))) == sorted(map(bytes, x))


def test_splits_digits_and_seed_scalings(tiny: Path) -> None:
    d = load_recipe_data({"format": "openml", "split": "stratified", "test_size": 120, "valid_size": 60,
                          "split_seed": 123, "normalization": "symmetric"}, data_dir=tiny, log=quiet)
    assert (len(d.x_train), len(d.x_valid), len(d.x_test)) == (540, 60, 120)
    assert np.array_equal(np.bincount(d.y_valid), np.full(10, 6))
    assert d.x_train.min() == -1 and d.x_train.max() <= 1
    b = load_recipe_data({"format": "idx", "digits": [3, 8], "normalization": "minmax_batched",
                          "stat_batch": 20, "eval_normalization": "none"}, data_dir=tiny, log=quiet)
    assert set(b.y_train) == {0, 1} and b.classes == [3, 8]
    assert b.x_train.max() <= 1 and b.x_test.max() > 1  # test left unscaled, like seed 001
    rows = b.x_train[: len(b.x_train) // 20 * 20].reshape(-1, 20, 784)
    assert np.all(rows.min(axis=0)[rows.max(axis=0) > rows.min(axis=0)] == 0)  # per position, per pixel
    c = load_recipe_data({"format": "keras", "normalization": "column_zscore"}, data_dir=tiny, log=quiet)
    cols = c.x_test.reshape(-1, 28, 28)
    np.testing.assert_allclose(cols.mean(axis=(0, 1)), 0, atol=1e-4)  # test set: its own statistics
    with pytest.raises(ValueError, match="unknown data format"):
        load_recipe_data({"format": "hdf5"}, data_dir=tiny)
    with pytest.raises(ValueError, match="unknown normalisation"):
        load_recipe_data({"format": "idx", "normalization": "whiten"}, data_dir=tiny, log=quiet)


# --------------------------------------------------------------------------- the runner
def tiny_recipe(**training) -> Recipe:
    base = load_recipe("seed-000")
    d = {"name": "tiny", "seed": {"metric": "test", "reported": 0.5, "seconds": 10.0},
         "data": {"format": "keras", "normalization": "unit"},
         "model": {"sizes": [784, 16, 10], "activations": ["relu", "none"]},
         "training": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 50,
                      "epochs": 4, "seed": 0, **training},
         "improved": {"training": {"optimizer": {"name": "adam", "lr": 0.01}}}}
    assert base.name == "seed-000"
    return Recipe.from_dict(copy.deepcopy(d))


def test_run_recipe_trains_and_compares(tiny: Path) -> None:
    r = run_recipe(tiny_recipe(), data_dir=tiny, log=quiet)
    assert r.variant == "faithful" and r.metric == "test" and r.epochs == 4
    assert r.accuracy > 0.9
    assert not r.ok and "OUT OF RANGE 49.00%-51.00%" in r.line()  # far above the 'seed' figure
    assert "built the equivalent" in r.note
    i = run_recipe(tiny_recipe(), "improved", data_dir=tiny, log=quiet)
    assert i.ok and i.target_epoch is not None and 0 < i.target_seconds <= i.seconds
    assert "reached 50.00%" in i.line() and "faster than the seed's code" in i.line()
    again = run_recipe(tiny_recipe(), data_dir=tiny, log=quiet)
    assert again.accuracy == r.accuracy and again.history["loss"] == r.history["loss"]


def test_faithful_line_flags_out_of_range(tiny: Path) -> None:
    r = run_recipe(tiny_recipe(epochs=1, batch_size=0), data_dir=tiny, log=quiet)
    assert r.accept == (0.49, 0.51)
    assert ("in range" in r.line()) == r.ok and ("OUT OF RANGE" in r.line()) != r.ok


def test_seed_000_recipe_runs_on_other_digits(tiny: Path) -> None:
    r = run_recipe("seed-000", "improved", data_dir=tiny, fetch=False, digits=[3, 8], log=quiet)
    assert r.reported is None and "n/a" in r.line() and r.accuracy > 0.9
    with pytest.raises(ValueError, match="two digits"):
        run_recipe("seed-000", data_dir=tiny, fetch=False, digits=[1, 2, 3], log=quiet)


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
normalization = "symmetric"
[model]
sizes = [784, 12, 10]
activations = ["relu", "none"]
[training]
loss = "cross_entropy"
optimizer = { name = "adam", lr = 0.01 }
batch_size = 60
epochs = 3
""")
    assert main(["reproduce", str(path), "--data", str(tiny), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny") and "seed test  50.00%" in out and "in range" in out
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


def test_reproduce_all_writes_the_table(tiny: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import digitnet.recipes.cli as rcli

    monkeypatch.setattr(rcli, "recipe_names", lambda: ["seed-002"])
    real = rcli.run_recipe

    def short(name, variant, **kw):  # the real recipe, 3 epochs, on tiny data
        recipe = load_recipe(name)
        recipe.faithful["data"]["valid_size"] = 40
        recipe.improved["data"]["valid_size"] = 40
        return real(recipe, variant, epochs=3, **kw)

    monkeypatch.setattr(rcli, "run_recipe", short)
    out = tmp_path / "docs" / "reproduction.md"
    code = main(["reproduce", "--all", "--data", str(tiny), "--out", str(out), "--quiet"])
    text = out.read_text()
    assert "| seed-002 | valid 83.00% |" in text and "Kaggle" in text
    assert "### seed-002" in text and "scalar" in text
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
    r = run_recipe("seed-003", "improved", epochs=1, log=quiet)
    assert "Keras mnist.npz" in r.note
    assert r.accuracy > 0.9 and r.ok


def test_speedup_wording() -> None:
    from digitnet.recipes.runner import times

    assert times(154.2) == "154x faster"
    assert times(1.46) == "1.5x faster"
    assert times(0.5) == "2.0x slower"
    assert times(None) == ""


def test_improved_settings_replace_the_faithful_ones_whole():
    from digitnet.recipes.runner import _merge

    base = {"training": {"loss": {"name": "mse", "reduction": "sample"}, "epochs": 5}, "notes": "a"}
    out = _merge(base, {"training": {"loss": {"name": "cross_entropy"}}, "notes": "b"})
    assert out == {"training": {"loss": {"name": "cross_entropy"}, "epochs": 5}, "notes": "b"}
    assert base["training"]["loss"]["reduction"] == "sample"  # the faithful recipe is untouched
