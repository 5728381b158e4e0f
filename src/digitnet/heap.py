"""Keep freed memory for reuse: NumPy's temporaries of a few MB, allocated and freed every
step, otherwise cost a page fault per 4 KB each time.

glibc's ``malloc`` serves large requests (above 128 KB at first) with fresh ``mmap`` pages
and gives the top of its heap back to the system when more than a few hundred KB of it is
free. A training step that makes ten temporaries of 1-6 MB (the augmentation's coordinate
grids, an activation's output) then faults in every page of every temporary, every step:
the bilinear sampling of a batch of digits ran 3x slower for it. :func:`keep_freed_memory`
raises both thresholds, so such arrays come from, and go back to, memory the process keeps.
Memory once used stays with the process (up to :data:`TRIM_BYTES` of it free), which is
what a training run wants, but not what a host process may want: the ``digitnet`` command
calls it for its own process, and a script of one's own can call it too; the library never
does by itself. Other allocators (macOS, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Requests below this come from the heap (glibc's largest allowed value on 64-bit systems).
MMAP_BYTES = 32 << 20
#: Free memory at the top of the heap kept, not returned to the system, up to this much.
TRIM_BYTES = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True if they were set."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))
    return _done
