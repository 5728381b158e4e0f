"""Elementwise work on every core, for the layers whose work splits by channel.

BLAS runs a matrix product on all the cores; NumPy runs every other function on one, but
releases the GIL inside its loops. A convolutional network spends a third of a step in such
work on feature maps (column copies, batch norm, pooling), each of which is independent from
channel to channel, so those layers hand blocks of channels to a few threads with
:func:`over_blocks`: the formula is the same, each thread computes it for its own channels,
writing into its slice of the output. Feature maps are small to split this way only when
they are large: below :data:`MIN_VALUES` values the work runs on the calling thread.

The number of threads is ``DIGITNET_THREADS``, else ``OMP_NUM_THREADS`` (what the benchmarks
pin BLAS to), else the number of CPUs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

#: Work on fewer values than this (per call) is not split: handing it over would cost more.
MIN_VALUES = 1 << 18

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def thread_count() -> int:
    """Threads for elementwise work: ``DIGITNET_THREADS``, ``OMP_NUM_THREADS``, or the CPUs."""
    for var in ("DIGITNET_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def _executor(threads: int) -> ThreadPoolExecutor:
    """The shared pool, with at least ``threads - 1`` workers (the caller is the last one)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < threads - 1:
            _pool_size = max(threads - 1, 1)
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="digitnet")
        return _pool


def blocks(n: int, parts: int) -> list[slice]:
    """``range(n)`` as ``parts`` contiguous slices of nearly equal length (no empty ones)."""
    parts = max(1, min(parts, n))
    edges = [n * i // parts for i in range(parts + 1)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def over_blocks(n: int, work: Callable[[slice], object], values: int = MIN_VALUES) -> None:
    """Call ``work(block)`` for contiguous blocks of ``range(n)`` (channels, say), at once on
    :func:`thread_count` threads, and return when every block is done; ``values`` is how much
    the whole job touches, to keep small jobs on this thread. The blocks must not write to
    the same memory. An exception in a block is raised here."""
    threads = min(thread_count(), n)
    if threads <= 1 or values < MIN_VALUES:
        work(slice(0, n))
        return
    parts = blocks(n, threads)
    futures = [_executor(threads).submit(work, part) for part in parts[1:]]
    try:
        work(parts[0])  # this thread does the first block
    finally:
        for future in futures:
            future.result()
