"""The estimator API and model files: save/load round trip, corrupt and foreign files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from digitnet.classifier import Classifier
from digitnet.estimator import MLPClassifier
from digitnet.io import ModelFileError, load_bundle, save_bundle
from tests.conftest import make_blobs


@pytest.fixture(scope="module")
def fitted():
    x, y = make_blobs(300, n_classes=3)
    y = np.array([3, 5, 8])[y]  # arbitrary labels come back as themselves
    clf = MLPClassifier(hidden=(32,), epochs=8, batch_size=32, lr=3e-3, seed=0)
    return clf.fit(x, y), x, y


def test_fit_predict_proba_score(fitted):
    clf, x, y = fitted
    assert clf.classes_.tolist() == [3, 5, 8]
    proba = clf.predict_proba(x[:10])
    assert proba.shape == (10, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(clf.predict(x)) <= {3, 5, 8}
    assert clf.score(x, y) > 0.95
    assert len(clf.history_.loss) == 8


def test_input_validation():
    clf = MLPClassifier(hidden=(4,), epochs=1)
    with pytest.raises(NotFittedError, match="not fitted"):
        clf.predict(np.zeros((1, 784)))
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(np.zeros((5, 10)), np.zeros(5))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.fit(np.zeros((5, 10)), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.full((4, 10), np.nan), np.array([0, 1, 0, 1]))


def test_prediction_input_errors(fitted):
    clf, _, _ = fitted
    with pytest.raises(ValueError, match="784 features"):
        clf.predict(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        clf.predict(np.zeros(784, dtype=np.uint8))  # scikit-learn's rule: X is 2-D
    single = clf.classifier_.predict(np.zeros(784, dtype=np.uint8))  # a Classifier takes one flat image
    assert single.shape == (1,)


def test_save_load_round_trip(fitted, tmp_path):
    clf, x, _ = fitted
    path = clf.save(tmp_path / "m.npz")
    loaded = Classifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x[:20]), clf.predict_proba(x[:20]))
    assert loaded.classes == [3, 5, 8]
    assert loaded.metadata["spec"]["model"]["hidden"] == [32]
    assert loaded.spec.model.hidden == (32,)
    with np.load(path, allow_pickle=False) as archive:  # loadable without pickle
        meta = json.loads(str(archive["__meta__"]))
    assert meta["format"] == "digitnet" and meta["format_version"] == 1
    assert meta["normalization"]["method"] == "unit"


def test_truncated_file_is_a_clear_error(fitted, tmp_path):
    clf, _, _ = fitted
    path = clf.save(tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        Classifier.load(path)


def test_foreign_and_missing_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a digitnet file"):
        Classifier.load(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ModelFileError):
        Classifier.load(tmp_path / "text.npz")
    with pytest.raises(ModelFileError, match="no such file"):
        Classifier.load(tmp_path / "absent.npz")
    np.savez(tmp_path / "obj.npz", __meta__=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ModelFileError):
        Classifier.load(tmp_path / "obj.npz")


def test_checkpoint_is_not_a_model(tmp_path):
    save_bundle(tmp_path / "c.npz", {"kind": "checkpoint"}, {"param/0.weight": np.zeros(2)})
    with pytest.raises(ModelFileError, match="expected a model file"):
        Classifier.load(tmp_path / "c.npz")


def test_mismatched_weights_are_rejected(fitted, tmp_path):
    clf, _, _ = fitted
    path = clf.save(tmp_path / "m.npz")
    meta, arrays = load_bundle(path)
    arrays["param/0.weight"] = np.zeros((3, 3), dtype=np.float32)
    meta.pop("format")
    save_bundle(path, meta, arrays)
    with pytest.raises(ModelFileError, match="expected shape"):
        Classifier.load(path)


def test_newer_format_is_refused(tmp_path):
    save_bundle(tmp_path / "m.npz", {"kind": "model", "format_version": 99}, {})
    with pytest.raises(ModelFileError, match="newer"):
        Classifier.load(tmp_path / "m.npz")


def test_failed_save_leaves_old_file_intact(fitted, tmp_path, monkeypatch):
    clf, _, _ = fitted
    path = clf.save(tmp_path / "m.npz")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        clf.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temp file left
    assert zipfile.is_zipfile(path)


def test_chunked_scoring_matches_one_pass(fitted):
    clf, x, _ = fitted
    model = clf.classifier_
    whole = model.decision_function(x, batch_size=len(x))
    # BLAS may sum in another order for another batch shape: equal to float32 rounding
    np.testing.assert_allclose(model.decision_function(x, batch_size=7), whole, rtol=1e-5, atol=1e-5)
    assert model.decision_function(x[:0]).shape == (0, 3)


def test_predict_with_proba_is_predict_and_predict_proba(fitted):
    clf, x, _ = fitted
    model = clf.classifier_
    labels, proba = model.predict_with_proba(x)
    np.testing.assert_array_equal(labels, model.predict(x))
    np.testing.assert_array_equal(proba, model.predict_proba(x))
