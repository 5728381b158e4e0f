"""The scikit-learn estimator: scikit-learn's own checks, its tools (clone, Pipeline,
GridSearchCV, cross_val_score), partial_fit and warm_start, and pickles that hold settings and
weights only (joblib's memory-mapped loading included)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from digitnet.classifier import Classifier  # noqa: E402
from digitnet.errors import SpecError  # noqa: E402
from digitnet.estimator import MLPClassifier  # noqa: E402
from tests.conftest import make_blobs  # noqa: E402


# Every check scikit-learn has for a classifier, on the estimator as it comes (the defaults:
# 784-256-10 settings, x/255 scaling); none is declared as expected to fail.
@parametrize_with_checks([MLPClassifier()])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_the_array_api_check_too():
    """The one check scikit-learn skips unless SCIPY_ARRAY_API=1 is set before scipy loads."""
    code = ("from sklearn.utils.estimator_checks import check_array_api_input\n"
            "from digitnet.estimator import MLPClassifier\n"
            "check_array_api_input('MLPClassifier', MLPClassifier(), array_namespace='numpy', "
            "expect_only_array_outputs=False)\nprint('passed')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SCIPY_ARRAY_API": "1"})
    assert out.returncode == 0 and out.stdout.strip() == "passed", out.stderr[-2000:]


@pytest.fixture(scope="module")
def blobs3():
    x, y = make_blobs(240, n_classes=3, seed=2)
    return x, np.array([2, 5, 7])[y]


SMALL = {"hidden": (16,), "epochs": 3, "batch_size": 32, "lr": 0.01}


def test_clone_pipeline_grid_search_and_cross_validation(blobs3):
    x, y = blobs3
    est = MLPClassifier(**SMALL)
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        clone(est.fit(x, y)).predict(x)  # a clone of a fitted estimator is unfitted
    pipe = Pipeline([("scale", StandardScaler()), ("net", MLPClassifier(**SMALL, normalization="none"))])
    scores = cross_val_score(pipe, x, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9
    search = GridSearchCV(MLPClassifier(**SMALL), {"hidden": [(4,), (16,)], "lr": [1e-4, 0.01]}, cv=3)
    search.fit(x, y)
    assert search.best_params_["lr"] == 0.01  # 3 epochs at 1e-4 barely move the weights
    assert search.best_estimator_.score(x, y) == search.score(x, y) > 0.9
    assert set(search.predict(x)) <= {2, 5, 7}


def test_before_fit_it_says_not_fitted(tmp_path):
    est = MLPClassifier()
    for call in (lambda: est.predict(np.zeros((1, 784))), lambda: est.predict_proba(np.zeros((1, 784))),
                 lambda: est.save(tmp_path / "m.npz")):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()


def test_fitted_attributes_are_scikit_learn_s(blobs3):
    x, y = blobs3
    est = MLPClassifier(**SMALL, valid_size=0.25).fit(x, y)
    assert est.n_features_in_ == 784 and est.classes_.tolist() == [2, 5, 7]
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3 and est.loss_curve_[-1] < est.loss_curve_[0]
    assert len(est.validation_scores_) == 3 and est.best_validation_score_ == max(est.validation_scores_)
    assert est.loss_curve_ == est.history_.loss
    plain = MLPClassifier(**SMALL).fit(x, y)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    assert isinstance(plain.classifier_, Classifier) and plain.classifier_.classes == [2, 5, 7]


def test_string_labels_predict_as_themselves_but_a_model_file_needs_integers(blobs3, tmp_path):
    x, y = blobs3
    names = np.array(["two", "five", "seven"])[np.searchsorted([2, 5, 7], y)]
    est = MLPClassifier(**SMALL).fit(x, names)
    assert est.classes_.tolist() == ["five", "seven", "two"]
    assert (est.predict(x) == names).mean() > 0.9
    with pytest.raises(ValueError, match="integer class labels"):
        est.save(tmp_path / "m.npz")
    saved = MLPClassifier(**SMALL).fit(x, y).save(tmp_path / "m.npz")
    assert Classifier.load(saved).classes == [2, 5, 7]


def test_settings_are_checked_by_the_spec_when_fit_runs(blobs3):
    x, y = blobs3
    for params, message in [({"activation": "swish"}, "model.activation"), ({"lr": -1.0}, "training.lr"),
                            ({"normalization": "column_zscore"}, "scales a whole set at once"),
                            ({"valid_size": 2.5}, "data.valid_size"), ({"warm_start": "yes"}, "warm_start")]:
        est = MLPClassifier(**params)  # stored as given
        assert est.get_params()[next(iter(params))] == next(iter(params.values()))
        with pytest.raises(SpecError, match=message):
            est.fit(x, y)


def test_partial_fit_is_fit_one_epoch_at_a_time(blobs3):
    x, y = blobs3
    settings = {**SMALL, "schedule": "constant", "shuffle": False, "epochs": 2}
    whole = MLPClassifier(**settings).fit(x, y)
    stepwise = MLPClassifier(**settings)
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        stepwise.partial_fit(x, y)
    stepwise.partial_fit(x, y, classes=[2, 5, 7]).partial_fit(x, y)
    # the optimiser's state carries over from call to call: the same weights as two epochs
    for a, b in zip(whole.classifier_.model.named_parameters(), stepwise.classifier_.model.named_parameters(),
                    strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    assert stepwise.n_iter_ == 2 and stepwise.loss_curve_ == whole.loss_curve_
    with pytest.raises(ValueError, match="labels outside the classes"):
        stepwise.partial_fit(x[:4], np.array([2, 5, 7, 9]))
    with pytest.raises(ValueError, match="X has 783 features"):
        stepwise.partial_fit(x[:, 1:], y)
    first = MLPClassifier(**SMALL).partial_fit(x[:10], y[:10], classes=[2, 5, 7, 11])
    assert first.classes_.tolist() == [2, 5, 7, 11]  # labels the first batch lacks are still classes
    assert first.predict_proba(x[:3]).shape == (3, 4)


def test_warm_start_continues_and_checks_what_it_continues(blobs3):
    x, y = blobs3
    est = MLPClassifier(**SMALL, warm_start=True).fit(x, y)
    weights = est.classifier_.model.state_dict()
    est.fit(x, y)
    assert est.n_iter_ == 6 and len(est.loss_curve_) == 6
    assert est.loss_curve_[3] < est.loss_curve_[0]  # it went on from trained weights
    assert not np.array_equal(weights["0.weight"], est.classifier_.model.state_dict()["0.weight"])
    with pytest.raises(ValueError, match="warm_start continues a network that knows the classes"):
        est.fit(x, np.where(y == 7, 9, y))
    with pytest.raises(SpecError, match="another network"):
        est.set_params(hidden=(8,)).fit(x, y)
    fresh = MLPClassifier(**SMALL).fit(x, y)
    again = clone(fresh).fit(x, y).fit(x, y)  # without warm_start, fit starts again
    np.testing.assert_array_equal(again.predict_proba(x), fresh.predict_proba(x))


@pytest.fixture(scope="module")
def default_fitted(blobs3):
    x, y = blobs3
    return MLPClassifier(epochs=1).fit(x, y), x  # the default 784-256-10 network


def weight_bytes(est: MLPClassifier) -> int:
    return sum(p.nbytes for _, p in est.classifier_.model.named_parameters())


def test_a_pickle_holds_settings_and_weights_only(default_fitted):
    est, x = default_fitted
    data = pickle.dumps(est)
    assert len(data) < weight_bytes(est) + 20_000  # no gradients, optimiser state or buffers
    back = pickle.loads(data)
    assert not any(hasattr(layer, "_workspace") or hasattr(layer, "_x") for layer in back.classifier_.model)
    np.testing.assert_array_equal(back.predict_proba(x), est.predict_proba(x))
    assert back.get_params() == est.get_params() and back.loss_curve_ == est.loss_curve_
    assert hasattr(est.classifier_.model[0], "_workspace")  # the fitted one still has its own


def test_joblib_memory_mapped_load_predicts(default_fitted, tmp_path):
    est, x = default_fitted
    joblib.dump(est, tmp_path / "est.joblib")
    loaded = joblib.load(tmp_path / "est.joblib", mmap_mode="r")
    weight = loaded.classifier_.model[0].params["weight"]
    assert isinstance(weight, np.memmap) and not weight.flags.writeable  # shared, not copied
    np.testing.assert_array_equal(loaded.predict_proba(x), est.predict_proba(x))
    before = (tmp_path / "est.joblib").read_bytes()
    loaded.partial_fit(x, est.classes_[np.arange(len(x)) % 3])  # training takes writable copies
    assert type(loaded.classifier_.model[0].params["weight"]) is np.ndarray
    assert (tmp_path / "est.joblib").read_bytes() == before
