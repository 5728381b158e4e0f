"""Shared by the hostile-input tests: a genuine small model, tiny MNIST, an offline environment,
and the check that a refusal was clean."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import make_blobs
from tests.security.harness import PEAK_LIMIT_MB, Outcome
from tests.test_cli import write_tiny_mnist


def assert_refused(outcome: Outcome, *names: str, progress: bool = False) -> None:
    """No signal, no traceback, exit 1, one line on stderr naming each of ``names`` (the last
    line, after progress notes, with ``progress``), memory under the issue's limit."""
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert outcome.signal is None, f"killed by {outcome.signal}: {outcome.stderr[-2000:]}"
    assert not outcome.traceback, outcome.stderr[-3000:]
    assert outcome.returncode == 1, (outcome.returncode, outcome.stdout[-500:], outcome.stderr[-1000:])
    if progress:
        assert not any("error" in line for line in lines[:-1]), outcome.stderr
        lines = lines[-1:]
    assert len(lines) == 1, outcome.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert outcome.peak_mb < PEAK_LIMIT_MB, f"peak {outcome.peak_mb:.0f} MB"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(tmp: Path) -> dict[str, str]:
    """A private cache and home, no MNIST directory, and no network: urllib goes to a closed
    proxy and pip to no index."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {var: proxy for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    env.update(XDG_CACHE_HOME=str(tmp / "xdg"), HOME=str(tmp / "home"), DIGITNET_DATA="",
               no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost", PIP_NO_INDEX="1",
               PIP_FIND_LINKS=str(tmp / "no-wheels"), PIP_CONFIG_FILE="/dev/null", MPLBACKEND="Agg")
    return env


@pytest.fixture(scope="session")
def genuine_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small genuine model file (784 inputs, classes 0, 1, 2)."""
    from tests.conftest import save_small_model

    x, y = make_blobs(150, n_classes=3)
    return save_small_model(tmp_path_factory.mktemp("genuine") / "model.npz", x, y)


@pytest.fixture(scope="session")
def digit_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("PIL", reason="Pillow is not installed (the images extra)")
    from tests.web.helpers import png

    path = tmp_path_factory.mktemp("png") / "seven.png"
    path.write_bytes(png("seven"))
    return path


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny"), n_train=120, n_test=40)
