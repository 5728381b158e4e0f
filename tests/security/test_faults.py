"""Faults end cleanly: read-only directories and full disks are one line; temp files of killed
writes are removed by the next write; a mirror that drips bytes is abandoned at a deadline."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from digitnet.atomic import STALE_AFTER, write_bytes
from digitnet.data.sources import CacheDirectory, HTTPSMirrors, Lookup, http_get
from tests.security.conftest import assert_refused, offline_env
from tests.security.harness import ROOT, run_limited


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not _namespaces_work(), reason="cannot mount in a user namespace here")


def _in_namespace(setup: str, command: list[str], after: str = "true") -> list[str]:
    """``command`` run by sh after ``setup`` (mounts) in a private user and mount namespace, then
    ``after`` (its output goes to stdout); the exit status is the command's."""
    quoted = " ".join(f"'{part}'" for part in command)
    script = f"{setup} && {{ {quoted}; code=$?; {after} >&1; exit $code; }}"
    return ["-c", "import os, sys; os.execvp('unshare', ['unshare', '-rm', 'sh', '-c', sys.argv[1]])", script]


def _read_only(directory: Path) -> str:
    return f"mount --bind '{directory}' '{directory}' && mount -o remount,bind,ro '{directory}' '{directory}'"


TRAIN = ["train", "--hidden", "8", "--epochs", "1", "--valid-size", "0", "--no-progress"]


@needs_mounts
def test_a_read_only_out_directory_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    cmd = [sys.executable, "-m", "digitnet.cli", *TRAIN, "--data", str(tiny_mnist), "--out", str(out / "run")]
    outcome = run_limited(_in_namespace(_read_only(out), cmd), env=offline_env(tmp_path))
    assert_refused(outcome, str(out / "run"), "Read-only file system")


@needs_mounts
def test_a_read_only_cache_is_one_line(tiny_mnist: Path, tmp_path: Path) -> None:
    env = {**offline_env(tmp_path), "DIGITNET_DATA": str(tiny_mnist)}
    cache = Path(env["XDG_CACHE_HOME"])
    cache.mkdir(parents=True)
    cmd = [sys.executable, "-m", "digitnet.cli", "reproduce", "seed-002", "--out", str(tmp_path / "r"),
           "--no-fetch", "--quiet"]
    outcome = run_limited(_in_namespace(_read_only(cache), cmd), env=env)
    assert_refused(outcome, str(cache), "Read-only file system", progress=True)
    assert not (tmp_path / "r").exists()


@needs_mounts
def test_a_full_disk_is_one_line_and_keeps_what_was_written(tiny_mnist: Path, tmp_path: Path) -> None:
    disk = tmp_path / "small"
    disk.mkdir()
    (tmp_path / "kept.txt").write_text("written before")
    cmd = [sys.executable, "-m", "digitnet.cli", *TRAIN, "--hidden", "512", "--data", str(tiny_mnist),
           "--out", str(disk / "run")]
    # a 1 MB disk holding one file already: the run's config fits, its 1.6 MB model does not
    setup = f"mount -t tmpfs -o size=1m tmpfs '{disk}' && cp '{tmp_path}/kept.txt' '{disk}/kept.txt'"
    after = f"cat '{disk}/kept.txt'; echo; find '{disk}' -name '*.tmp'"
    outcome = run_limited(_in_namespace(setup, cmd, after), env=offline_env(tmp_path))
    assert_refused(outcome, str(disk / "run.partial"), "No space left on device", "free some space",
                   progress=True)
    assert outcome.stdout.strip().splitlines()[-1] == "written before"  # and no temp file left


# --------------------------------------------------------------------------- killed writes
WRITER = """
import sys, time
from digitnet.atomic import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write(b"half of a file")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def _killed_write(target: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def test_temp_files_of_killed_writes_are_removed_by_the_next_write(tmp_path: Path) -> None:
    _killed_write(tmp_path / "model.npz")
    (stale,) = tmp_path.glob(".model.npz.*.tmp")
    old = time.time() - STALE_AFTER - 60
    os.utime(stale, (old, old))
    _killed_write(tmp_path / "metrics.json")  # killed just now: may still be a live writer's
    (fresh,) = tmp_path.glob(".metrics.json.*.tmp")
    write_bytes(tmp_path / "config.json", b"{}")
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.json", fresh.name])


# --------------------------------------------------------------------------- a dripping mirror
class _Drip(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(1000):
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.5)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dripping() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_dripping_mirror_is_abandoned_at_the_deadline(dripping: str, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="not received within 2 s"):
        http_get(dripping + "f.gz", timeout=5, deadline=2)
    assert time.monotonic() - start < 4
    mirrors = HTTPSMirrors([dripping], get=functools.partial(http_get, deadline=1))
    lookup = Lookup()
    cache = CacheDirectory(tmp_path / "cache")
    start = time.monotonic()
    mirrors.fetch(cache.path, {"train-labels-idx1-ubyte": ("0" * 64, 10)}, lookup)
    assert time.monotonic() - start < 3
    assert "not received within 1 s" in lookup.tried[0] and not cache.path.exists()
