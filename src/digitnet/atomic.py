"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file digitnet writes (models, checkpoints, JSON, caches, plots, reports) goes
through :func:`atomic_write`, so an error or Ctrl-C mid-write loses nothing. A write the
operating system refuses (read-only directory, disk full) is a :class:`FileWriteError`
naming the file, which the command line prints as one line.

A writer killed outright (SIGKILL, power loss) cannot remove its temp file
(``.<name>.<12 hex digits>.tmp``), so each write first removes, from the directory it writes
into, such temp files last modified more than :data:`STALE_AFTER` seconds ago. A live
writer's file is younger: it is created when the write starts and grows until it is renamed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import FileWriteError

#: Age in seconds after which an abandoned temp file is removed by the next write beside it.
STALE_AFTER = 3600.0
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file next to ``path``, created with mode 0666 less the umask
    (like any new file; ``tempfile.mkstemp`` would make it 0600)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # a 48-bit name collision: draw another
            continue


def remove_stale_temps(directory: Path, *, older_than: float = STALE_AFTER) -> list[Path]:
    """Remove the temp files of killed writes in ``directory`` (older than ``older_than``
    seconds); returns what was removed. Best effort: what cannot be removed stays."""
    removed: list[Path] = []
    cutoff = time.time() - older_than
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if not _TEMP_NAME.match(entry.name):
                continue
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and info.st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a temp file next to ``path``; on success move it over ``path`` (os.replace).

    The parent directory is created if needed. On any error, including KeyboardInterrupt,
    the temp file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path.parent)
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
            raise write_error(path, exc) from exc
        raise


def write_error(path: Path, exc: OSError) -> FileWriteError:
    """A one-line :class:`FileWriteError` for ``path`` from the operating system's error."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = {errno.ENOSPC: "free some space and try again",
            errno.EROFS: "choose a writable location",
            errno.EACCES: "choose a location you may write to",
            errno.EPERM: "choose a location you may write to"}.get(exc.errno or 0, "")
    error = FileWriteError(f"cannot write {path}: {reason}" + (f"; {hint}" if hint else ""))
    error.errno, error.filename = exc.errno, str(path)
    return error


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)
