"""The allocator setting that keeps a training step's temporaries in memory the process holds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from digitnet import heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_keep_freed_memory_sets_the_thresholds_once_and_numpy_still_works():
    code = ("import numpy as np\nfrom digitnet import heap\nassert heap.keep_freed_memory()\n"
            "assert heap.keep_freed_memory()\n"
            "for _ in range(50):\n    a = np.ones(1 << 21, np.float32); a *= 2; assert a.sum() == 2 << 21\n"
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_it_says_no_where_it_cannot_set_them(monkeypatch):
    monkeypatch.setattr(heap, "_done", False)
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.keep_freed_memory() is False
