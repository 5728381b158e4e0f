"""Run directories a user can trust, through the command line: replayed from config.json bit
for bit, never half-written, never silently replaced, resumed after SIGKILL or Ctrl-C to the
same weights as an uninterrupted run; and the small things of the command line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from digitnet.cli import build_parser, main
from digitnet.commands.common import spec_flags
from digitnet.runs import CHECKPOINT, MARKER, partial_path
from tests.test_cli import write_tiny_mnist

SETTINGS = ["--hidden", "64", "--valid-size", "100", "--lr", "0.01", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny"), n_train=1200, n_test=100)


def weights(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "model.npz") as archive:
        return {k: archive[k] for k in archive.files if k != "__meta__"}


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def digitnet(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitnet", *args], capture_output=True, text=True,
                          timeout=300, **kw)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "digitnet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def test_replaying_config_json_gives_identical_weights(tiny, tmp_path):
    first, second = tmp_path / "x", tmp_path / "y"
    assert main(["train", "--data", str(tiny), "--out", str(first), "--epochs", "3", "--dropout", "0.2",
                 *SETTINGS]) == 0
    assert main(["train", "--data", str(tiny), "--config", str(first / "config.json"), "--out", str(second),
                 "--no-progress"]) == 0
    assert_same_weights(first, second)
    assert json.loads((first / "config.json").read_text()) == json.loads((second / "config.json").read_text())
    # flags override the file, by the same names
    third = tmp_path / "z"
    assert main(["train", "--data", str(tiny), "--config", str(first / "config.json"), "--out", str(third),
                 "--epochs", "1", "--no-progress"]) == 0
    assert json.loads((third / "config.json").read_text())["training"]["epochs"] == 1


def test_out_never_silently_replaces_a_run(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *SETTINGS]
    assert main(args) == 0
    (run / "report.html").write_text("an old report")
    before = (run / "model.npz").read_bytes()
    assert main(args) == 1
    assert "already exists; choose another --out, or pass --overwrite" in capsys.readouterr().err
    assert (run / "model.npz").read_bytes() == before and (run / "report.html").exists()
    assert main([*args, "--hidden", "32", "--overwrite"]) == 0
    assert not (run / "report.html").exists()  # replaced whole: nothing of the old run is left
    assert json.loads((run / "config.json").read_text())["model"]["hidden"] == [32]
    assert not partial_path(run).exists()
    # a directory that is not a run is never replaced
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert main(["train", "--data", str(tiny), "--out", str(other), "--overwrite", "--epochs", "1",
                 *SETTINGS]) == 1
    assert "not a run directory" in capsys.readouterr().err and (other / "holiday.jpg").exists()


def test_sigkill_mid_run_leaves_a_partial_run_that_resumes_to_the_same_weights(tiny, tmp_path):
    runs = tmp_path / "runs"
    settings = ["--data", str(tiny), "--epochs", "150", "--batch-size", "25", *SETTINGS]
    assert digitnet("train", *settings, "--out", str(runs / "whole")).returncode == 0
    killed = runs / "killed"
    proc = start("train", *settings, "--out", str(killed))
    wait_for(partial_path(killed) / CHECKPOINT, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists() and (partial_path(killed) / MARKER).is_file()
    assert json.loads((partial_path(killed) / "config.json").read_text())["training"]["epochs"] == 150
    # the unfinished run does not stop compare; it is named in a note
    out = digitnet("compare", *sorted(str(p) for p in runs.iterdir()), "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "skipped" in out.stdout and "killed.partial" in out.stdout and "whole" in out.stdout
    # evaluate explains what to do
    out = digitnet("evaluate", str(killed), "--data", str(tiny))
    assert out.returncode == 1 and "no such file" in out.stderr
    resumed = digitnet("train", "--resume", str(killed), "--data", str(tiny), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    assert killed.is_dir() and not partial_path(killed).exists() and not (killed / CHECKPOINT).exists()
    assert_same_weights(runs / "whole", killed)
    history = json.loads((killed / "metrics.json").read_text())["history"]
    assert history["epoch"] == list(range(1, 151))


def test_ctrl_c_saves_the_checkpoint_and_says_how_to_resume(tiny, tmp_path):
    settings = ["--data", str(tiny), "--epochs", "40", "--batch-size", "5", "--dropout", "0.3", *SETTINGS]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert digitnet("train", *settings, "--out", str(whole)).returncode == 0
    proc = start("train", *settings, "--out", str(stopped))
    wait_for(partial_path(stopped) / CHECKPOINT, proc)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"resume with: digitnet train --resume {stopped}" in err and "Traceback" not in err
    with np.load(partial_path(stopped) / CHECKPOINT) as archive:
        meta = json.loads(str(archive["__meta__"]))
    assert meta["kind"] == "checkpoint"
    resumed = digitnet("train", "--resume", str(stopped), "--data", str(tiny), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(whole, stopped)


def test_resume_takes_the_runs_own_settings(tiny, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 1
    assert "no unfinished run to resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "x"), "--lr", "0.1", "--out", "y"]) == 1
    assert "drop --lr, --out" in capsys.readouterr().err
    done = tmp_path / "done"
    assert main(["train", "--data", str(tiny), "--out", str(done), "--epochs", "1", *SETTINGS]) == 0
    assert main(["train", "--resume", str(done)]) == 1
    assert "finished run; there is nothing to resume" in capsys.readouterr().err
    partial_path(tmp_path / "again").mkdir()
    assert main(["train", "--data", str(tiny), "--out", str(tmp_path / "again"), *SETTINGS]) == 1
    assert "holds an unfinished run: resume it with `digitnet train --resume" in capsys.readouterr().err


def test_an_unwritable_out_is_one_line(tiny, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = str(blocker / "run")
    assert main(["train", "--data", str(tiny), "--out", out, "--epochs", "1", *SETTINGS]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("digitnet train: error: cannot write") and len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_a_closed_pipe_exits_quietly(tiny, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *SETTINGS]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "digitnet", "predict", str(run), "--data", str(tiny),
                             *[f"--index={i}" for i in range(100)]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written (like `| head -0`)
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    # the tiny data are not the canonical MNIST, which is one note; nothing else may be said
    err = "".join(line for line in err.splitlines(True) if not line.startswith("digitnet: note:"))
    assert proc.returncode == 141 and err == ""


def test_progress_lines_without_a_terminal_and_every_default_in_help(tiny, tmp_path):
    out = digitnet("train", "--data", str(tiny), "--out", str(tmp_path / "r"), "--epochs", "2",
                   "--hidden", "16", "--valid-size", "100")
    assert out.returncode == 0
    epoch_lines = [line for line in out.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    assert "\r" not in out.stderr  # no progress bar drawn into a pipe
    _, commands = build_parser()
    text = " ".join(commands["train"].format_help().split())
    for flag, _, f in spec_flags():
        if f.default is not None:
            shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else str(f.default)
            assert f"(default: {shown})" in text, flag


def test_options_may_follow_positional_arguments(tiny, tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image

    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "1", *SETTINGS]) == 0
    picture = np.zeros((28, 28), np.uint8)
    picture[6:8, 4:24] = 255
    Image.fromarray(picture).save(tmp_path / "a.png")
    capsys.readouterr()
    assert main(["predict", str(run), "--json", str(tmp_path / "a.png")]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(tmp_path / "a.png")


def test_predict_index_on_a_two_digit_model_picks_from_its_digits(tiny, tmp_path, capsys):
    run = tmp_path / "pair"
    assert main(["train", "--data", str(tiny), "--out", str(run), "--digits", "3,8", "--epochs", "2",
                 "--hidden", "16", "--valid-size", "20", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["predict", str(run), "--index", "0", "--index", "1", "--data", str(tiny), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert {r["label"] for r in results} <= {3, 8} and all(r["digit"] in (3, 8) for r in results)
    assert main(["predict", str(run), "--index", "99", "--data", str(tiny)]) == 1
    assert "images of digits 3,8" in capsys.readouterr().err


def test_python_m_digitnet():
    out = digitnet("--version")
    assert out.returncode == 0 and out.stdout.startswith("digitnet ")
    assert digitnet().returncode == 2  # no command: the help, and the usage status


def test_the_wheel_ships_py_typed_and_a_license(tmp_path):
    root = Path(__file__).resolve().parents[1]
    assert (root / "src" / "digitnet" / "py.typed").is_file() and (root / "LICENSE").is_file()
    pytest.importorskip("setuptools")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(root)], check=True)
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("digitnet-*.whl"))).namelist()
    assert "digitnet/py.typed" in names and any(n.endswith("LICENSE") for n in names)


def test_train_with_augmentation_from_the_command_line(tiny, tmp_path):
    run = tmp_path / "aug"
    # (the tiny digits are bars two pixels apart, so no shifts or turns here)
    assert main(["train", "--data", str(tiny), "--out", str(run), "--epochs", "2", "--augment",
                 "thickness,noise", *SETTINGS]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["augment"] == {"thickness": {}, "noise": {}}
    assert json.loads((run / "metrics.json").read_text())["test_accuracy"] > 0.5
