"""Model and checkpoint files: arrays in ``.npz`` plus JSON metadata, never pickle.

A file is a plain NumPy ``.npz`` archive. The entry ``__meta__`` holds the JSON
metadata as a 0-d unicode array; every other entry is a float array named
``param/<layer>.<name>`` (model weights), ``optim/<param>/<slot>`` (optimiser
state) or ``best/<layer>.<name>`` (early stopping's best weights). It is read
with ``allow_pickle=False``, so opening a file can never run code, and it is
written to a temporary file in the same directory then renamed, so a crash
mid-write never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .errors import DigitnetError

FORMAT = "digitnet"
FORMAT_VERSION = 1
META_KEY = "__meta__"


class ModelFileError(DigitnetError, ValueError):
    """A model or checkpoint file is missing, corrupt, truncated or not digitnet's."""


def save_bundle(path: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-able) and ``arrays`` to ``path`` atomically."""
    path = Path(path)
    if META_KEY in arrays:
        raise ValueError(f"array name {META_KEY!r} is reserved")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    payload = {META_KEY: np.array(json.dumps(meta))}
    payload.update({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    with atomic_write(path) as f:
        np.savez(f, **payload)
    return path


def load_bundle(path: str | Path, *, kind: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`save_bundle`; ``kind`` ("model"/"checkpoint") is checked."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if META_KEY not in archive.files:
                raise ModelFileError(
                    f"{path}: not a digitnet file (an .npz without digitnet metadata)"
                )
            meta = json.loads(str(archive[META_KEY]))
            arrays = {k: archive[k] for k in archive.files if k != META_KEY}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
        raise ModelFileError(f"{path}: corrupt or truncated file ({exc})") from None
    except ValueError as exc:  # includes object arrays refused by allow_pickle=False
        raise ModelFileError(f"{path}: unreadable file ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a digitnet file (metadata format is missing)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: file format version {version!r} is newer than this digitnet reads "
            f"({FORMAT_VERSION}); upgrade digitnet"
        )
    if kind is not None and meta.get("kind") != kind:
        raise ModelFileError(f"{path}: expected a {kind} file, found {meta.get('kind')!r}")
    return meta, arrays


def split_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays whose names start with ``prefix + '/'``, with the prefix removed."""
    start = prefix + "/"
    return {k[len(start):]: v for k, v in arrays.items() if k.startswith(start)}


def with_prefix(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in arrays.items()}
