"""Generated hostile inputs (hypothesis): IDX headers, model metadata, pickle opcode streams.

Not collected on its own (the name does not start with ``test_``): ``test_generated.py`` runs
this module with pytest in a subprocess under an address-space limit, so that a reader that
crashes or runs away is caught there, not in the test session. Each example must give either
a valid result or the reader's own one-line error naming the input; and little memory.
"""

from __future__ import annotations

import gzip
import json
import pickle
import pickletools
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digitnet.classifier import Classifier
from digitnet.data.idx import IDXError, read_idx
from digitnet.data.pickled import UnsafePickleError, load_mnist_pkl_bytes, write_mnist_pkl
from digitnet.io import ModelFileError
from tests.conftest import make_blobs, save_small_model
from tests.security import hostile

EXAMPLES = 120
MEMORY_MB = 64  # what one example may allocate, traced
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TMP = Path(tempfile.mkdtemp(prefix="digitnet-generated-"))


def within_memory(call, *args):
    """Run ``call(*args)``; return (result or the exception, peak MB traced)."""
    tracemalloc.start()
    try:
        try:
            result = call(*args)
        except Exception as exc:  # noqa: BLE001 - the caller checks which
            result = exc
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def one_line(exc: Exception, name: str) -> None:
    text = str(exc)
    assert "\n" not in text and name in text, text


# --------------------------------------------------------------------------- IDX headers
dims = st.lists(st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)), min_size=0, max_size=5)


@SETTINGS
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x07, 0xFF]), shape=dims,
       magic=st.sampled_from([b"\x00\x00", b"\x00\x01", b"\x1f\x8b"]), payload=st.binary(max_size=600),
       declared_ndim=st.one_of(st.none(), st.integers(0, 255)), gz=st.booleans())
def test_idx_headers(code, shape, magic, payload, declared_ndim, gz) -> None:
    ndim = len(shape) if declared_ndim is None else declared_ndim
    data = magic + bytes([code, ndim]) + struct.pack(f">{len(shape)}I", *shape) + payload
    path = TMP / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    result, peak = within_memory(read_idx, path)
    assert peak < MEMORY_MB
    if isinstance(result, Exception):
        assert isinstance(result, IDXError), repr(result)
        one_line(result, str(path))
    else:
        assert result.shape == tuple(shape) and result.nbytes <= len(payload)


# --------------------------------------------------------------------------- model metadata
def _genuine() -> tuple[dict, dict[str, np.ndarray]]:
    x, y = make_blobs(60, n_classes=3)
    path = TMP / "genuine.npz"
    save_small_model(path, x, y, hidden=4, epochs=1)
    return hostile.read_model(path)


GENUINE_META, GENUINE_ARRAYS = _genuine()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=True)
    | st.text(max_size=8) | st.sampled_from(["float32", "float64", "U4", "object", "Linear", "zscore"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(GENUINE_META) if p]


@SETTINGS
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), json_values, st.booleans()), min_size=1, max_size=3))
def test_model_metadata(edits) -> None:
    meta = json.loads(json.dumps(GENUINE_META))
    for where, value, delete in edits:
        target = meta
        try:
            for key in where[:-1]:
                target = target[key]
            if delete and isinstance(target, dict):
                target.pop(where[-1], None)
            else:
                target[where[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit changed the path
    path = hostile.write_model(TMP / "model.npz", meta, GENUINE_ARRAYS)
    result, peak = within_memory(Classifier.load, path)
    assert peak < MEMORY_MB
    if isinstance(result, Exception):
        assert isinstance(result, ModelFileError), repr(result)
        one_line(result, str(path))
    else:
        probabilities = result.predict_proba(np.zeros((2, 784), np.uint8))
        assert np.all(np.isfinite(probabilities))


# --------------------------------------------------------------------------- pickle streams
def _classic() -> bytes:
    splits = tuple((np.full((2, 784), 0.25, np.float32), np.arange(2)) for _ in range(3))
    write_mnist_pkl(TMP / "classic.pkl.gz", splits)
    return gzip.decompress((TMP / "classic.pkl.gz").read_bytes())


CLASSIC = _classic()
PY3 = pickle.dumps(tuple((np.full((2, 784), 0.25, np.float32), np.arange(2)) for _ in range(3)), protocol=2)
OPCODES = [op.code.encode("latin-1") for op in pickletools.opcodes]


def _check_pickle(data: bytes) -> None:
    result, peak = within_memory(load_mnist_pkl_bytes, data, "generated.pkl")
    assert peak < MEMORY_MB
    if isinstance(result, Exception):
        assert isinstance(result, UnsafePickleError), repr(result)
        one_line(result, "generated.pkl")
    else:
        assert len(result) == 3 and all(x.shape[1] == 784 and x.dtype == np.float32 for x, _ in result)


@SETTINGS
@given(base=st.sampled_from([CLASSIC, PY3]),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["flip", "insert", "delete", "cut"]),
                                st.binary(min_size=1, max_size=6)), min_size=1, max_size=4))
def test_mutated_pickles(base, edits) -> None:
    data = bytearray(base)
    for at, how, blob in edits:
        i = at % (len(data) + 1)
        if how == "flip" and i < len(data):
            data[i] ^= blob[0] or 1
        elif how == "insert":
            data[i:i] = blob
        elif how == "delete":
            del data[i:i + len(blob)]
        else:
            del data[i:]
    _check_pickle(bytes(data))


@SETTINGS
@given(ops=st.lists(st.tuples(st.sampled_from(OPCODES), st.binary(max_size=9)), max_size=40))
def test_random_opcode_streams(ops) -> None:
    _check_pickle(b"\x80\x02" + b"".join(code + arg for code, arg in ops) + b".")
