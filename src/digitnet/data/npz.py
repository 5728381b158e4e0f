"""Reading ``.npz`` archives one member at a time, every size checked before it is allocated.

``np.load`` on an ``.npz`` trusts the archive: it decompresses whatever member is asked for,
as large as it says. :class:`NpzArchive` instead reads a member only when its caller names
it, and first checks, from the zip directory and the member's ``.npy`` header alone:

- the dtype is one the caller accepts (never an object or structured dtype: no pickle);
- the shape is the one the caller expects (when it says), and the payload
  (``prod(shape) * itemsize``) is within the caller's ``max_bytes``;
- header plus payload is exactly the member's uncompressed size in the zip directory, and
  that size is within what its compressed bytes can expand to (deflate: at most 1032:1).

Only then is one array of that size allocated and filled in chunks; ``zipfile`` stops at the
declared size and checks the CRC. Members nobody names (an extra 1 GiB one, say) are never
read. Errors are :class:`ArchiveError` without the path; callers add it, in their own error
type (a model file's, a data format's).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import DigitnetError

__all__ = ["ArchiveError", "MemberHeader", "NpzArchive", "MAX_MEMBERS"]

MAX_MEMBERS = 4096  # a model file has two per layer, a checkpoint a few more
MAX_HEADER_BYTES = 10_000  # NumPy's own limit for a .npy header
_MAX_RATIO, _SLACK = 1032, 1 << 16  # deflate's largest expansion, plus room for headers
_CHUNK = 1 << 20


class ArchiveError(DigitnetError, ValueError):
    """An ``.npz`` archive or one of its members is malformed, forged or not what was expected."""


@dataclass(frozen=True)
class MemberHeader:
    """What a member's ``.npy`` header declares."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes of magic and header before the payload

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class NpzArchive:
    """An ``.npz`` file opened for bounded, member-by-member reading (a context manager)."""

    def __init__(self, path: str | Path, *, max_members: int = MAX_MEMBERS) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile:
            raise ArchiveError("not an .npz archive (not a zip file)") from None
        except (OSError, EOFError, ValueError) as exc:  # truncated directories end in these
            raise ArchiveError(f"unreadable zip archive ({exc})") from None
        infos = self._zip.infolist()
        if len(infos) > max_members:
            self._zip.close()
            raise ArchiveError(f"the archive has {len(infos):,} members, more than the {max_members:,} read")
        self._infos = {info.filename[:-4]: info for info in infos if info.filename.endswith(".npy")}

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def names(self) -> list[str]:
        """The array names (members ``NAME.npy``), in archive order."""
        return list(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos

    def _open(self, name: str) -> tuple[zipfile.ZipInfo, IO[bytes]]:
        info = self._infos.get(name)
        if info is None:
            raise ArchiveError(f"no member {name!r}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"member {name!r} uses zip compression method {info.compress_type}; "
                               "only stored and deflated members are read")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise ArchiveError(f"member {name!r} declares {info.file_size:,} bytes but stores "
                               f"{info.compress_size:,}")
        if info.file_size > info.compress_size * _MAX_RATIO + _SLACK:
            raise ArchiveError(f"member {name!r} declares {info.file_size:,} bytes, more than its "
                               f"{info.compress_size:,} compressed bytes can hold")
        try:
            return info, self._zip.open(info)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
            raise ArchiveError(f"member {name!r} cannot be opened ({exc})") from None

    def _header(self, name: str, f: IO[bytes], info: zipfile.ZipInfo) -> MemberHeader:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    f, max_header_size=MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    f, max_header_size=MAX_HEADER_BYTES)
            else:
                raise ArchiveError(f"member {name!r} has .npy format version {version}, not 1.0 or 2.0")
        except ArchiveError:
            raise
        except (ValueError, SyntaxError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ArchiveError(f"member {name!r} has no valid .npy header ({exc})") from None
        header = MemberHeader(name, tuple(int(d) for d in shape), np.dtype(dtype), bool(fortran), f.tell())
        if header.dtype.hasobject or header.dtype.fields is not None or header.dtype.subdtype is not None:
            raise ArchiveError(f"member {name!r} has dtype {header.dtype!r}, which is not a plain number "
                               "or string type (object arrays would need pickle)")
        if header.offset + header.nbytes != info.file_size:
            raise ArchiveError(f"member {name!r} declares shape {header.shape} {header.dtype.str} "
                               f"({header.nbytes:,} bytes) but holds {info.file_size - header.offset:,}")
        return header

    def header(self, name: str) -> MemberHeader:
        """The member's declared shape and dtype, checked against its size; nothing else read."""
        info, f = self._open(name)
        with f:
            return self._header(name, f, info)

    def read(self, name: str, *, dtypes: Collection[np.dtype | str], max_bytes: int,
             shape: tuple[int, ...] | None = None) -> np.ndarray:
        """The array ``name``, in native byte order, if its dtype is one of ``dtypes`` (byte
        order aside), its shape is ``shape`` (when given) and its payload is at most
        ``max_bytes``; all checked before the array is allocated."""
        info, f = self._open(name)
        with f:
            header = self._header(name, f, info)
            accepted = {np.dtype(d).newbyteorder("=") for d in dtypes}
            if header.dtype.newbyteorder("=") not in accepted:
                want = ", ".join(sorted(str(d) for d in accepted))
                raise ArchiveError(f"member {name!r} has dtype {header.dtype}, expected {want}")
            if shape is not None and header.shape != tuple(shape):
                raise ArchiveError(f"member {name!r} has shape {header.shape}, expected shape {tuple(shape)}")
            if header.nbytes > max_bytes:
                raise ArchiveError(f"member {name!r} holds {header.nbytes:,} bytes, over the limit of "
                                   f"{max_bytes:,}")
            flat = np.empty(math.prod(header.shape), dtype=header.dtype)
            view, got = memoryview(flat.view(np.uint8)), 0
            try:
                while got < header.nbytes and (k := f.readinto(view[got:got + _CHUNK])):
                    got += k
                if got != header.nbytes or f.read(1):
                    raise ArchiveError(f"member {name!r} is truncated ({got:,} of {header.nbytes:,} bytes)")
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # CRC, corrupt deflate
                if isinstance(exc, ArchiveError):
                    raise
                raise ArchiveError(f"member {name!r} is corrupt ({exc})") from None
        arr = flat.reshape(header.shape, order="F" if header.fortran else "C")
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))
