"""The run spec: one vocabulary for flags, config.json, model files and the estimator; checks
that name the key; the one builder."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

from digitnet.cli import build_parser
from digitnet.commands.common import spec_flags
from digitnet.errors import SpecError
from digitnet.estimator import ESTIMATOR_ONLY, NOT_PARAMETERS, MLPClassifier
from digitnet.nn import Adam, Linear, Momentum
from digitnet.spec import DataSpec, ModelSpec, RunSpec, TrainingSpec, build, load_spec, spec_fields
from tests.conftest import make_blobs

RUN_OPTIONS = {"config", "recipe", "resume", "data", "out", "overwrite", "no_checkpoint", "no_progress",
               "report"}


def test_one_vocabulary_for_flags_config_model_file_and_estimator(tmp_path):
    names = set(spec_fields())
    # the train command's setting flags are spec names (dest) with dashes (flag)
    _, commands = build_parser()
    dests = {a.dest for a in commands["train"]._actions if a.dest != "help"}
    assert dests - RUN_OPTIONS <= names
    for flag, _, f in spec_flags():
        assert flag == "--" + f.name.replace("_", "-")
    # config.json and the model file store the spec's nested tables, with the same keys
    spec = RunSpec().replace(hidden=(12,), epochs=2, batch_size=16, lr=0.01)
    stored = spec.to_dict()
    assert {k for table in stored.values() for k in table} <= names
    assert RunSpec.from_dict(json.loads(json.dumps(stored))) == spec
    # the estimator's parameters are the spec's names (plus warm_start and verbose), with the
    # spec's defaults; the settings it leaves out are those the arrays given to fit settle
    params = [p for p in inspect.signature(MLPClassifier.__init__).parameters if p != "self"]
    assert set(ESTIMATOR_ONLY) == {"warm_start", "verbose"} and set(ESTIMATOR_ONLY).isdisjoint(names)
    assert set(params) - set(ESTIMATOR_ONLY) == names - set(NOT_PARAMETERS)
    data_settings = {f.name for f in dataclasses.fields(DataSpec)}
    assert set(NOT_PARAMETERS) == data_settings - {"valid_size", "normalization", "augment"}
    defaults = RunSpec().flat()
    for p in inspect.signature(MLPClassifier.__init__).parameters.values():
        if p.name in defaults and p.name != "valid_size":
            assert p.default == defaults[p.name], p.name
    x, y = make_blobs(120, n_classes=3, d=20)
    est = MLPClassifier(hidden=(12,), epochs=2, batch_size=16, lr=0.01).fit(x, y)
    saved = est.save(tmp_path / "m.npz")
    meta = json.loads(str(np.load(saved)["__meta__"]))
    assert meta["spec"]["model"] == stored["model"] and meta["spec"]["training"] == stored["training"]


def test_every_setting_has_a_check_a_help_text_and_a_unique_name():
    seen = set()
    for table in (DataSpec, ModelSpec, TrainingSpec):
        for f in dataclasses.fields(table):
            assert f.name not in seen
            seen.add(f.name)
            assert callable(f.metadata["check"]) and f.metadata["help"]


@pytest.mark.parametrize("changes,message", [
    ({"momentum": 0.9},
     "training.momentum: does not apply to the adam optimizer (it takes lr, betas, eps, weight_decay)"),
    ({"optimizer": "sgd", "betas": (0.9, 0.99)}, "training.betas: does not apply to the sgd optimizer"),
    ({"reduction": "sum"}, "training.reduction: does not apply to the cross_entropy loss"),
    ({"schedule": "cosine", "gamma": 0.5}, "training.gamma: does not apply to the cosine schedule"),
    ({"optimizer": "nesterov", "nesterov": True},
     "training.nesterov: does not apply to the nesterov optimizer"),
    ({"lr": 0}, "training.lr: must be > 0"),
    ({"epochs": 0}, "training.epochs: must be >= 1"),
    ({"batch_size": -1}, "training.batch_size: must be >= 0"),
    ({"dropout": 1.0}, "model.dropout: must be < 1"),
    ({"hidden": (0,)}, "model.hidden: must be >= 1"),
    ({"activation": "swish"}, "model.activation: expected one of"),
    ({"optimizer": "rmsprop"}, "training.optimizer: expected one of adam"),
    ({"digits": (3, 3)}, "data.digits: values must be distinct"),
    ({"digits": (3, 12)}, "data.digits: mnist has the classes 0..9, got [3, 12]"),
    ({"valid_size": 1.5}, "data.valid_size: must be < 1"),
    ({"seed": True}, "training.seed: expected a whole number"),
    ({"loss": "bce"}, "training.loss: binary cross-entropy needs exactly 2 classes, got 10"),
    ({"test_size": 100}, "data.test_size: applies to the stratified split only") ,
    ({"stat_batch": 10}, "data.stat_batch: applies to normalization = 'minmax_batched' only"),
])
def test_bad_settings_name_the_key(changes, message):
    base = RunSpec().replace(split="file") if "test_size" in changes else RunSpec()
    with pytest.raises(SpecError) as exc:
        base.replace(**changes)
    assert message in str(exc.value)


def test_unknown_tables_and_keys_are_named_with_a_suggestion():
    suggestion = r"x.toml: \[training\] has no setting 'batchsize' \(did you mean 'batch_size'\?\)"
    with pytest.raises(SpecError, match=suggestion):
        RunSpec.from_dict({"training": {"batchsize": 3}}, "x.toml")
    with pytest.raises(SpecError, match=r"unknown table 'modle' \(did you mean 'model'\?\)"):
        RunSpec.from_dict({"modle": {}}, "x.toml")
    with pytest.raises(SpecError, match="unknown setting 'hiden'"):
        RunSpec().replace(hiden=(3,))
    with pytest.raises(SpecError, match="give either layers or hidden, not both"):
        RunSpec.from_dict({"model": {"hidden": [4], "layers": [{"type": "Linear"}]}})
    with pytest.raises(SpecError, match=r"model.layers\[1\]: unknown layer 'Conv9D'"):
        RunSpec.from_dict({"model": {"layers": [{"type": "Linear", "out_features": 4}, {"type": "Conv9D"}]}})
    with pytest.raises(SpecError, match=r"layer 'ReLU' takes no option 'alpha'"):
        RunSpec.from_dict({"model": {"layers": [{"type": "ReLU", "alpha": 0.1}, {"type": "Linear"}]}})


def test_load_spec_reads_toml_and_config_json(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[model]\nhidden = [64, 32]\n[training]\noptimizer = "momentum"\nlr = 0.05\n')
    spec, _ = load_spec(toml)
    assert spec.model.hidden == (64, 32) and spec.training.optimizer == "momentum"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(spec.to_dict()))
    assert load_spec(config)[0] == spec
    config.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(config)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.toml")


def test_the_builder_makes_the_network_loss_and_optimizer():
    spec = RunSpec().replace(hidden=(16,), optimizer="momentum", lr=0.1, momentum=0.8, schedule="step",
                             step_size=2, gamma=0.5, dropout=0.1)
    built = build(spec, 784, 10)
    assert [type(layer).__name__ for layer in built.model.layers] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert isinstance(built.optimizer, Momentum) and built.optimizer.momentum == 0.8
    built.optimizer.set_epoch(2, 4)
    assert built.optimizer.lr == pytest.approx(0.05)
    again = build(spec, 784, 10)  # same seed, same weights
    np.testing.assert_array_equal(built.model.layers[0].params["weight"],
                                  again.model.layers[0].params["weight"])
    layers = build(RunSpec.from_dict({"model": {"layers": [
        {"type": "Linear", "out_features": 8}, {"type": "Tanh"}, {"type": "Linear"}]}}), 784, 3).model.layers
    assert (layers[0].in_features, layers[0].out_features, layers[2].in_features, layers[2].out_features) == \
        (784, 8, 8, 3)
    assert isinstance(build(RunSpec(), 784, 10).optimizer, Adam)
    mse = build(RunSpec().replace(loss="mse"), 784, 10).model.layers
    assert type(mse[-1]).__name__ == "Sigmoid"  # what the loss needs
    float64 = build(RunSpec.from_dict({"model": {"dtype": "float64", "layers": [
        {"type": "ScalarBiasLinear"}]}}), 784, 10).model.layers[0]
    assert isinstance(float64, Linear) and float64.params["weight"].dtype == np.float64
    with pytest.raises(SpecError, match="the last Linear layer gives 5 outputs"):
        build(RunSpec.from_dict({"model": {"layers": [{"type": "Linear", "out_features": 5}]}}), 784, 10)


def test_the_estimator_validates_in_fit_not_in_init():
    est = MLPClassifier(hidden=(8,), optimizer="adam", momentum=0.9, lr=0.02, epochs=20)  # stored as given
    assert est.get_params()["momentum"] == 0.9
    x, y = make_blobs(30, n_classes=2, d=10)
    with pytest.raises(SpecError, match="momentum: does not apply to the adam optimizer"):
        est.fit(x, y)
    assert est.set_params(momentum=None).fit(x, y).score(x, y) > 0.9


def test_augmentation_is_part_of_the_spec(tmp_path):
    spec = RunSpec().replace(augment=("affine", "elastic"))
    assert spec.data.augment == {"affine": {}, "elastic": {}}
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    toml = tmp_path / "aug.toml"
    toml.write_text("[data.augment]\naffine = { rotation = 15 }\nnoise = {}\n")
    assert load_spec(toml)[0].data.augment == {"affine": {"rotation": 15.0}, "noise": {}}
    with pytest.raises(SpecError, match="data.augment: needs a per-batch normalization"):
        RunSpec().replace(augment=("noise",), normalization="column_zscore")
    with pytest.raises(SpecError, match="data.augment: unknown augmentation 'warp'"):
        RunSpec().replace(augment=("warp",))
