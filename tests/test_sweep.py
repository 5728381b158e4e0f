"""``digitnet sweep``: the [sweep] table read with one-line errors naming the key, the table and
the page of trials, and real sweeps on Ray Tune: four trials with two workers on a local Ray
runtime (interrupted with Ctrl-C and resumed), and the same trials on a Ray head node the test
starts on 127.0.0.1 and joins with --address. Every Ray process runs in a session the test
made, and the test checks that none of them outlives it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from digitnet.errors import SpecError
from digitnet.runs import load_run
from digitnet.spec import load_spec
from digitnet.sweep import Progress, TrialRow, check_trials, format_table, load_sweep, parse_sweep, ranked
from tests.test_cli import write_tiny_mnist

BASE = {"data": {"valid_size": 100}, "model": {"hidden": [16]},
        "training": {"epochs": 3, "batch_size": 50}}
#: Four trials; lr = 1e30 diverges in its first epoch, so one trial fails and is recorded
SWEEP_TOML = """
[data]
valid_size = 100
[model]
hidden = [16]
[training]
epochs = 3
batch_size = 50
[sweep]
search = "{search}"
{extra}
parallel = 2
[sweep.params]
lr = {{choices = [0.003, 0.01, 0.03, 1e30]}}
"""


def sweep_doc(**sweep) -> dict:
    return {**BASE, "sweep": sweep}


def error_of(doc: dict) -> str:
    with pytest.raises(SpecError) as info:
        parse_sweep(doc, "s.toml")
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- the [sweep] table
def test_a_sweep_file_is_a_run_spec_plus_its_sweep_table(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SWEEP_TOML.format(search="random", extra="trials = 6"))
    sweep = load_sweep(path)
    assert (sweep.search, sweep.trials, sweep.parallel, sweep.metric, sweep.mode) == \
        ("random", 6, 2, "val_accuracy", "max")
    assert [p.name for p in sweep.params] == ["lr"] and sweep.params[0].values == (0.003, 0.01, 0.03, 1e30)
    assert sweep.base.model.hidden == (16,) and sweep.base.training.epochs == 3
    spec, _ = load_spec(path)  # `digitnet train --config` takes the same file, [sweep] ignored
    assert spec == sweep.base


def test_parameters_take_choices_ranges_and_log_ranges():
    sweep = parse_sweep(sweep_doc(trials=3, params={
        "hidden": {"choices": [[32], [64, 32]]}, "dropout": {"range": [0.0, 0.5]},
        "lr": {"log_range": [1e-4, 1e-2]}, "batch_size": {"range": [16, 64]}}))
    hidden, dropout, lr, batch = sweep.params
    assert hidden.values == ((32,), (64, 32)) and hidden.value(1) == (64, 32)
    assert (dropout.kind, dropout.integer, lr.kind, batch.integer) == ("range", False, "log_range", True)
    assert batch.value(17.0) == 17 and isinstance(batch.value(17.0), int)
    assert sweep.spec_for({"hidden": (64, 32), "lr": 0.001}).model.hidden == (64, 32)


def test_augmentation_can_be_swept_though_data_settings_cannot():
    choices = {"augment": {"choices": [["affine"], ["affine", "elastic"]]}}
    sweep = parse_sweep(sweep_doc(search="grid", params=choices))
    assert sweep.trials == 2
    assert sweep.spec_for({"augment": {"affine": {}}}).data.augment == {"affine": {}}


def test_a_grid_runs_every_combination_of_choices():
    sweep = parse_sweep(sweep_doc(search="grid", params={"hidden": {"choices": [[8], [16], [32]]},
                                                          "lr": {"choices": [0.01, 0.1]}}))
    assert sweep.trials == 6
    assert "a range has no grid points" in error_of(
        sweep_doc(search="grid", params={"lr": {"range": [0.01, 0.1]}}))
    assert "leave trials out" in error_of(
        sweep_doc(search="grid", trials=4, params={"lr": {"choices": [0.01, 0.1]}}))


LR = {"lr": {"choices": [0.1]}}


@pytest.mark.parametrize(("sweep", "expected"), [
    ({"params": {"lrr": {"choices": [0.1]}}},
     "sweep.params.lrr: not a setting of the run spec (did you mean 'lr'?)"),
    ({"params": {"valid_size": {"choices": [100, 200]}}}, "sweep.params.valid_size: [data] settings stay"),
    ({"params": {"activation": {"choices": ["relu", "swish"]}}},
     "sweep.params.activation.choices: expected one of"),
    ({"params": {"activation": {"range": [0, 1]}}}, "activation is not a number; give choices"),
    ({"params": {"lr": {"log_range": [0.0, 0.1]}}}, "a log-uniform range needs low > 0"),
    ({"params": {"lr": {"range": [0.1, 0.01]}}}, "low must be below high"),
    ({"params": {"epochs": {"range": [1, 2.5]}}}, "epochs is a whole number"),
    ({"params": {"lr": [0.01, 0.1]}}, "sweep.params.lr: expected a table with one of choices, range"),
    ({"params": {}}, "sweep.params: name at least one setting to vary"),
    ({"metric": "test_accuracy", "params": LR}, "is the test set, which a sweep never optimises"),
    ({"search": "bayes", "params": LR}, "sweep.search: expected one of grid, random, tpe"),
    ({"grace_period": 2, "params": LR}, "sweep.grace_period: is an option of early_stop"),
    ({"trails": 3, "params": LR}, "[sweep] has no setting 'trails' (did you mean 'trials'?)"),
    ({"parallel": 0, "params": LR}, "sweep.parallel: expected a whole number >= 1"),
])
def test_every_mistake_in_the_sweep_table_is_one_line_naming_the_key(sweep, expected):
    message = error_of(sweep_doc(**sweep))
    assert message.startswith("s.toml: ") and expected in message


def test_every_trial_is_checked_before_ray_starts():
    # momentum is an option of sgd only: the trial with optimizer = "adam" is not a valid run
    doc = {**BASE, "training": {**BASE["training"], "optimizer": "sgd", "momentum": 0.9},
           "sweep": {"trials": 2, "params": {"optimizer": {"choices": ["sgd", "adam"]}}}}
    message = error_of(doc)
    assert "the trial with optimizer = adam is not a valid run" in message and "momentum" in message
    big = parse_sweep(sweep_doc(trials=2, params={f: {"choices": [1, 2, 3, 4]} for f in
                                                  ("warmup", "seed", "epochs")}))
    assert check_trials(big) == 4 ** 3  # every combination of the extremes, at most 64
    # varying the seed keeps the validation images of every trial the same
    assert big.base.data.split_seed == 0


def test_the_table_ranks_trials_by_the_metric_and_names_their_status():
    sweep = parse_sweep(sweep_doc(trials=3, params={"hidden": {"choices": [[16], [32, 16]]},
                                                    "lr": {"log_range": [1e-3, 1e-1]}}))
    rows = [TrialRow("t_00000", {"hidden": (16,), "lr": 0.00123456}, "done", 0.91, 3, 1.25, "d0"),
            TrialRow("t_00001", {"hidden": (32, 16), "lr": 0.05}, "done", 0.95, 3, 1.5, "d1"),
            TrialRow("t_00002", {"hidden": (16,), "lr": 0.1}, "error", error="TrainingDiverged: nan")]
    assert [r.trial for r in ranked(rows, sweep)] == ["t_00001", "t_00000", "t_00002"]
    lines = format_table(rows, sweep).splitlines()
    assert lines[0].split() == ["trial", "hidden", "lr", "val_accuracy", "epochs", "seconds", "status"]
    assert lines[2].split() == ["t_00001", "32,16", "0.05", "0.9500", "3", "1.5", "done"]
    assert lines[3].split()[2] == "0.001235" and lines[4].split()[-1] == "error"


def test_the_progress_line_counts_done_running_and_pending():
    trials = [SimpleNamespace(trial_id="a", status="TERMINATED",
                              last_result={"val_accuracy": 0.8, "finished": True}),
              SimpleNamespace(trial_id="b", status="RUNNING", last_result={"val_accuracy": 0.9}),
              SimpleNamespace(trial_id="c", status="ERROR", last_result={})]
    line = Progress(total=5, metric="val_accuracy", mode="max").line(trials)
    assert line == "sweep: 1/5 done, 1 running, 2 pending, 1 failed; best val_accuracy 0.8000 (a)"


# --------------------------------------------------------------------------- real sweeps on Ray
def session_processes(sid: int) -> list[int]:
    """Processes of the session ``sid`` (a process the test started with start_new_session and
    everything it started, Ray's daemons and workers included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def end_session(sid: int, grace: float = 30.0) -> list[int]:
    """Wait up to ``grace`` seconds for the session's processes to exit, then kill the rest by
    id. Returns those that had to be killed."""
    deadline = time.monotonic() + grace
    while (left := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.25)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@pytest.fixture(scope="module")
def ray_env(tmp_path_factory):
    """The environment of every Ray process here: loopback only, no usage statistics, Ray's
    files in a short directory of our own (its socket paths must stay short), and a token of
    our own for the cluster's authentication (none is read from or written to ~/.ray)."""
    pytest.importorskip("ray.tune")
    pytest.importorskip("optuna")
    ray_dir = tempfile.mkdtemp(prefix="dn-ray-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_dir, "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    yield env
    subprocess.run(["rm", "-rf", ray_dir], check=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny"), n_train=600, n_test=100)


def sweep_file(tmp_path: Path, search: str, extra: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP_TOML.format(search=search, extra=extra))
    return path


def start_digitnet(args: list[str], env: dict, stderr: Any = subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digitnet", *args], env=env, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    """Wait for a digitnet process; then none of the Ray processes it started may be left."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        left = end_session(proc.pid)
    assert left == [], f"Ray processes outlived `digitnet sweep`: {left}"
    return proc.returncode, out, err


def check_finished_sweep(out: Path, stdout: str) -> dict:
    record = json.loads((out / "sweep.json").read_text())
    assert record["status"] == "finished" and len(record["trials"]) == 4
    by_lr = {t["params"]["lr"]: t for t in record["trials"]}
    failed = by_lr[1e30]
    assert failed["status"] == "error" and "training diverged" in failed["error"]
    assert "\n" not in failed["error"] and f"{failed['trial']}: error: " in stdout
    for lr in (0.003, 0.01, 0.03):
        trial = by_lr[lr]
        assert trial["status"] in ("done", "stopped") and 1 <= trial["epochs"] <= 3
        if trial["status"] == "done":  # an ordinary run directory: config, model, metrics
            run = load_run(trial["run_dir"])
            assert run.spec.training.lr == lr and run.metrics["epochs"] == 3
            assert run.metrics["sweep"]["data_in_object_store"] is True  # read in place, not copied
            assert trial["val_accuracy"] == pytest.approx(run.metrics["history"]["val_accuracy"][-1])
    best = record["best"]
    scores = [t["val_accuracy"] for t in record["trials"] if t["status"] == "done"]
    assert best["val_accuracy"] == max(scores) and 0.0 <= best["test_accuracy"] <= 1.0
    assert json.loads((out / "best_config.json").read_text()) == \
        json.loads((Path(best["run_dir"]) / "config.json").read_text())
    page = (out / "sweep.html").read_text()
    assert "parcoords" in page and "Plotly" in page and "<script src=" not in page  # opens offline
    table = stdout.splitlines()
    assert table[0].split() == ["trial", "lr", "val_accuracy", "epochs", "seconds", "status"]
    assert f"best trial: {best['trial']}" in stdout
    return record


@pytest.mark.slow
def test_a_local_sweep_resumes_after_ctrl_c_and_records_a_failed_trial(tiny, tmp_path, ray_env):
    spec = sweep_file(tmp_path, "grid", "")
    out = tmp_path / "sweep"
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = start_digitnet(["sweep", str(spec), "--data", str(tiny), "--out", str(out)], ray_env, err)
    deadline = time.monotonic() + 180
    # a trial counts as done once Ray Tune has its last result (the progress line says so), which
    # is a moment after its run directory is complete
    while not re.search(r"^sweep: [1-9]\d*/4 done", log.read_text(), re.M):
        assert proc.poll() is None, (proc.communicate(), log.read_text())
        assert time.monotonic() < deadline, "no trial finished"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: Ray Tune stops the trials and saves its state
    code, stdout, _ = finish(proc)
    stderr = log.read_text()
    assert code == 130, stderr
    assert f"resume with: digitnet sweep --resume {out}" in stderr
    first = json.loads((out / "sweep.json").read_text())
    assert first["status"] == "interrupted"
    done_before = {t["trial"]: Path(t["run_dir"]) for t in first["trials"] if t["status"] == "done"}
    assert done_before, first["trials"]
    stamps = {t: (d / "model.npz").stat().st_mtime_ns for t, d in done_before.items()}

    # resume: on the data directory the sweep started with, without --data
    code, stdout, stderr = finish(start_digitnet(["sweep", "--resume", str(out)], ray_env))
    assert code == 0, stderr
    progress = [line for line in stderr.splitlines() if line.startswith("sweep: ") and "/4 done" in line]
    assert "resuming the sweep" in stderr and int(progress[0].split()[1].split("/")[0]) >= 1
    record = check_finished_sweep(out, stdout)
    for trial, directory in done_before.items():  # finished trials were not trained again
        assert (directory / "model.npz").stat().st_mtime_ns == stamps[trial]
    assert all(t["status"] == "done" for t in record["trials"] if t["params"]["lr"] != 1e30)

    # the best trial's spec replays to the same weights (with one BLAS thread, as each trial had)
    replay = tmp_path / "replay"
    subprocess.run([sys.executable, "-m", "digitnet", "train", "--config", str(out / "best_config.json"),
                    "--data", str(tiny), "--out", str(replay), "--no-progress"], check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    best = Path(record["best"]["run_dir"])
    with np.load(best / "model.npz") as a, np.load(replay / "model.npz") as b:
        for key in a.files:
            if key != "__meta__":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(ray_env):
    """A Ray head node on 127.0.0.1 (its own session; SIGTERM stops it, then anything left of
    the session is killed by id)."""
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    head = subprocess.Popen([str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
                             "--disable-usage-stats"], env=ray_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=60)
        left = end_session(head.pid)
        assert left == [], f"Ray processes outlived the head node: {left}"


@pytest.mark.slow
def test_the_same_sweep_on_a_ray_cluster_joined_with_address(tiny, tmp_path, ray_env, ray_head):
    spec = sweep_file(tmp_path, "grid", "")
    out = tmp_path / "sweep"
    code, stdout, stderr = finish(start_digitnet(
        ["sweep", str(spec), "--data", str(tiny), "--out", str(out), "--address", ray_head], ray_env))
    assert code == 0, stderr
    assert f"on the Ray cluster at {ray_head}" in stderr
    check_finished_sweep(out, stdout)

    # on the same cluster: Optuna's TPE picks the four trials, and ASHA may stop poor ones
    spec = sweep_file(tmp_path, "tpe", 'trials = 4\nearly_stop = "asha"\nreduction_factor = 2\nseed = 3')
    out = tmp_path / "tpe"
    code, stdout, stderr = finish(start_digitnet(
        ["sweep", str(spec), "--data", str(tiny), "--out", str(out), "--address", ray_head], ray_env))
    assert code == 0, stderr
    record = json.loads((out / "sweep.json").read_text())
    assert record["search"] == "tpe" and len(record["trials"]) == 4
    assert {t["status"] for t in record["trials"]} <= {"done", "stopped", "error"}
    assert any(t["status"] == "done" for t in record["trials"]) and (out / "best_config.json").is_file()
    for trial in record["trials"]:
        if trial["status"] == "stopped":  # left unfinished, resumable with `digitnet train --resume`
            assert trial["run_dir"].endswith(".partial") and trial["epochs"] < 3
