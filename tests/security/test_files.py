"""The hostile files of issue 12, each given to the real reader or command in a limited
subprocess: refused in one line naming the input, no signal, no traceback, under 500 MB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.security import hostile
from tests.security.conftest import assert_refused, offline_env
from tests.security.harness import run_limited

CLI = ["-m", "digitnet.cli"]


# --------------------------------------------------------------------------- mnist.pkl.gz
@pytest.mark.parametrize("case", list(hostile.PICKLES))
def test_crafted_mnist_pkl_is_refused(case: str, tmp_path: Path) -> None:
    path = hostile.PICKLES[case](tmp_path)
    outcome = run_limited(["-m", "tests.security.run", "pkl", str(path)])
    assert_refused(outcome, str(path), "refused")
    assert "owned" not in outcome.stdout + outcome.stderr


def test_a_genuine_format_pickle_is_read(tmp_path: Path) -> None:
    from digitnet.data.pickled import write_mnist_pkl

    splits = tuple((np.full((3, 784), 0.5, np.float32), np.arange(3)) for _ in range(3))
    write_mnist_pkl(tmp_path / "mnist.pkl.gz", splits)
    outcome = run_limited(["-m", "tests.security.run", "pkl", str(tmp_path / "mnist.pkl.gz")])
    assert outcome.returncode == 0 and outcome.stdout.strip() == "ok", outcome.stderr


# --------------------------------------------------------------------------- IDX and Keras
def test_idx_gzip_claiming_a_terabyte_is_refused_before_reading(tmp_path: Path) -> None:
    path = hostile.idx_bomb(tmp_path)  # 1 MB on disk, 1 GiB of stream, 10**12 claimed
    outcome = run_limited(["-m", "tests.security.run", "idx", str(path)])
    assert_refused(outcome, str(path), "999,999,999,936 payload bytes")
    assert outcome.seconds < 30


def test_idx_gzip_claim_within_the_ratio_but_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = hostile.idx_bomb(tmp_path, claim=1 << 30, stream=1 << 20)  # 1 GiB claimed by a 1 kB file
    outcome = run_limited(["-m", "tests.security.run", "idx", str(path)])
    assert_refused(outcome, str(path))


def test_keras_npz_with_a_gibibyte_member_is_refused_from_its_header(tmp_path: Path) -> None:
    path = hostile.keras_bomb(tmp_path)
    outcome = run_limited(["-m", "tests.security.run", "keras", str(path)])
    assert_refused(outcome, str(path), "x_train", "over the limit")


# --------------------------------------------------------------------------- model files
MODEL_CASES = ["extra 1 GiB member", "12000x12000 layer", "architecture as a list", "JSON 100,000 deep",
               "dtype U4", "dtype object", "dtype int8", "NaN normalisation", "class label 10**30",
               "duplicate classes", "plain .npy named model.npz"]
#: what the one line must name for each case (besides the file)
MODEL_FIELDS = {"12000x12000 layer": "in_features", "architecture as a list": "architecture",
                "JSON 100,000 deep": "nested", "dtype U4": "dtype", "dtype object": "dtype",
                "dtype int8": "dtype", "NaN normalisation": "normalization.mean",
                "class label 10**30": "classes[0]", "duplicate classes": "classes",
                "plain .npy named model.npz": "not an .npz", "extra 1 GiB member": ""}


def test_the_genuine_model_is_predicted(genuine_model: Path, digit_png: Path) -> None:
    outcome = run_limited([*CLI, "predict", str(genuine_model), str(digit_png)])
    assert outcome.returncode == 0, outcome.stderr


@pytest.mark.parametrize("case", MODEL_CASES)
def test_forged_model_file_is_refused_by_predict(case: str, genuine_model: Path, digit_png: Path,
                                                 tmp_path: Path) -> None:
    path = hostile.model_variants(genuine_model)[case](tmp_path)
    outcome = run_limited([*CLI, "predict", str(path), str(digit_png)])
    if case == "extra 1 GiB member":  # the member nobody names is never read: the model works
        assert outcome.returncode == 0, outcome.stderr
        assert outcome.peak_mb < 500 and not outcome.traceback
        return
    assert_refused(outcome, str(path), MODEL_FIELDS[case])


def test_serve_refuses_to_start_on_a_model_it_cannot_use(genuine_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="FastAPI is not installed (the web extra)")
    path = hostile.model_variants(genuine_model)["NaN normalisation"](tmp_path)
    outcome = run_limited([*CLI, "serve", str(path), "--port", "0"], timeout=60)
    assert_refused(outcome, str(path), "normalization.mean")


# --------------------------------------------------------------------------- the caches
def test_cached_idx_files_that_fail_verification_are_not_used(genuine_model: Path, tiny_mnist: Path,
                                                              tmp_path: Path) -> None:
    env = offline_env(tmp_path)
    cache = tmp_path / "xdg" / "digitnet" / "mnist"
    shutil.copytree(tiny_mnist, cache)  # valid IDX files, wrong content: not canonical MNIST
    outcome = run_limited([*CLI, "evaluate", str(genuine_model)], env=env)
    assert_refused(outcome, "failed verification", progress=True)
    assert "accuracy" not in outcome.stdout
    assert sorted(p.name for p in cache.glob("*.corrupt")) == sorted(p.name + ".corrupt"
                                                                      for p in tiny_mnist.iterdir())


def _equivalent_dir(tiny: Path, env: dict[str, str]) -> Path:
    from digitnet.data import load_mnist
    from digitnet.data.catalog import _fingerprint

    return Path(env["XDG_CACHE_HOME"]) / "digitnet" / "equivalent" / _fingerprint(
        load_mnist(tiny, progress=False))


@pytest.mark.slow
def test_a_poisoned_pickle_in_the_equivalent_cache_is_rebuilt_not_used(tiny_mnist: Path,
                                                                       tmp_path: Path) -> None:
    env = {**offline_env(tmp_path), "DIGITNET_DATA": str(tiny_mnist)}
    built = _equivalent_dir(tiny_mnist, env)
    built.mkdir(parents=True)
    hostile.pkl_segfault(built)  # where digitnet would have built mnist.pkl.gz
    outcome = run_limited([*CLI, "reproduce", "seed-000", "--out", str(tmp_path / "run"), "--no-fetch"],
                          env=env, timeout=300)
    assert outcome.signal is None and not outcome.traceback, outcome.stderr[-3000:]
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    assert "has no recorded checksum" in outcome.stdout + outcome.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"]["verified"] is False
    recorded = json.loads((built / "SHA256SUMS.json").read_text())
    assert set(recorded) == {"mnist.pkl.gz"}
