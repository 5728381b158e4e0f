import os
import stat

import pytest

from digitnet.atomic import atomic_write, write_bytes


def test_written_file_has_the_usual_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_bytes(tmp_path / "deep" / "x.json", b"{}")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"{}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    path = write_bytes(tmp_path / "model.npz", b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
