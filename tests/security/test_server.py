"""``digitnet serve`` on loopback against clients that hold connections: slow bodies, idle
connections beyond the cap, clients that go away. Raw sockets, bounded in count and time."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="FastAPI is not installed (the web extra)")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from tests.web.helpers import serving  # noqa: E402

CAP, TIMEOUT = 8, 3.0
LIMITS = ("--max-connections", str(CAP), "--header-timeout", str(TIMEOUT), "--body-timeout", str(TIMEOUT),
          "--keep-alive-timeout", "1")
HEADERS = (b"POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Content-Length: 4000\r\n\r\n")


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(10)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (at most 10 s)."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _log(model: Path) -> str:
    return "".join(p.read_text() for p in sorted(model.parent.glob("serve-*.log")))


@pytest.fixture
def model(genuine_model: Path, tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    path.write_bytes(genuine_model.read_bytes())
    return path


def test_a_body_that_never_finishes_gets_408_and_the_server_carries_on(model: Path) -> None:
    with serving(model, *LIMITS) as url:
        sock = _connect(url)
        sock.sendall(HEADERS + b"[1, 2")
        start = time.monotonic()
        for _ in range(3):  # drip: a byte now and then must not extend the deadline
            time.sleep(0.4)
            sock.sendall(b"0")
        answer = _answer(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - start < TIMEOUT + 3
        assert httpx.get(url + "/api/model", timeout=5).status_code == 200
    log = _log(model)
    assert "Traceback" not in log
    assert "refused 127.0.0.1:" in log and "408 the request body did not arrive within 3 s" in log


def test_idle_connections_beyond_the_cap_get_a_fast_503_and_are_shed(model: Path) -> None:
    with serving(model, *LIMITS) as url:
        held = [_connect(url) for _ in range(CAP)]
        time.sleep(0.3)
        start = time.monotonic()
        extra = [_connect(url) for _ in range(3 * CAP)]
        answers = [_answer(sock) for sock in extra]
        assert all(a.startswith(b"HTTP/1.1 503") for a in answers), answers[:3]
        assert time.monotonic() - start < TIMEOUT  # before any held connection timed out
        held_answers = [_answer(sock) for sock in held]  # the header deadline sheds them
        assert all(a.startswith(b"HTTP/1.1 408") for a in held_answers), held_answers[:3]
        for sock in held + extra:
            sock.close()
        assert httpx.get(url + "/api/model", timeout=5).status_code == 200
    log = _log(model)
    assert "Traceback" not in log
    assert log.count("503 too many connections") == 3 * CAP
    assert log.count("408 the request headers") == CAP


def test_a_client_that_goes_away_leaves_no_traceback(model: Path) -> None:
    with serving(model, *LIMITS) as url:
        for _ in range(5):
            sock = _connect(url)
            sock.sendall(HEADERS + b"[1, 2")
            time.sleep(0.1)
            sock.close()
        time.sleep(0.5)
        r = httpx.post(url + "/api/predict", content=b"[1]", headers={"content-type": "application/json"})
        assert r.status_code == 422
    log = _log(model)
    assert "Traceback" not in log and "ASGI" not in log
    assert log.count("refused POST /api/predict") == 1  # the 422, one plain line


def test_listening_on_every_interface_says_so(model: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "digitnet.cli", "serve", str(model), "--host", "0.0.0.0",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "warning" in line and "reachable by other machines" in line, line


def test_running_short_of_file_descriptors_is_not_a_flood_of_tracebacks(model: Path, tmp_path: Path) -> None:
    import re
    import resource

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))  # the cap becomes 256 - 128 - 64 = 64

    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "digitnet.cli", "serve", str(model), "--port", "0",
                                 "--header-timeout", str(TIMEOUT)], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=few_descriptors)
    socks: list[socket.socket] = []
    try:
        for _ in range(100):
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/", log.read_text())
            if found:
                break
            time.sleep(0.1)
        assert found, log.read_text()
        url = found.group(1)
        time.sleep(0.5)
        for _ in range(300):  # more than the process may open
            try:
                socks.append(_connect(url))
            except OSError:
                break
        time.sleep(TIMEOUT + 1.5)  # the held ones are shed at the header deadline
        assert httpx.get(url + "/api/model", timeout=5).status_code == 200
    finally:
        for sock in socks:
            sock.close()
        proc.kill()
        proc.wait()
    text = log.read_text()
    assert "serving at most 64 connections" in text
    assert "Traceback" not in text and len(text) < 200_000
