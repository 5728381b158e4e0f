"""Run a command as a hostile input's victim: in a subprocess with an address-space limit, its
peak memory measured, and what a clean refusal looks like checked."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AS_LIMIT = 3 << 30  # address space of the victim: far above what a refusal needs, far below the machine
PEAK_LIMIT_MB = 500  # what the issue allows a refusal to use
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float
    seconds: float

    @property
    def signal(self) -> str | None:
        return signal.Signals(-self.returncode).name if self.returncode < 0 else None

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr

    def describe(self) -> str:
        """A short account of what happened, for a table."""
        if self.signal:
            return f"killed by {self.signal}"
        if self.returncode == 124:
            return "still running at the time limit"
        if self.traceback:
            last = [line for line in self.stderr.strip().splitlines() if line.strip()][-1]
            return f"traceback ({last.split(':')[0][:40]})"
        if self.returncode == 0:
            return "accepted (exit 0)"
        return "one-line error" if len(self.stderr.strip().splitlines()) == 1 else "error"


def _limit(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_limited(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120.0,
                limit: int = AS_LIMIT, cwd: Path | None = None) -> Outcome:
    """Run ``args`` (what follows the interpreter: ``-m module ...``) under ``limit`` bytes of
    address space, killed after ``timeout`` seconds (return code 124); its own peak resident
    memory comes from ``wait4``."""
    full_env = {**os.environ, **SINGLE_THREADED, **(env or {})}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env=full_env, cwd=cwd or ROOT, preexec_fn=lambda: _limit(limit))
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code == -signal.SIGKILL and time.perf_counter() - start >= timeout:
            code = 124
        out.seek(0)
        err.seek(0)
        return Outcome(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                       usage.ru_maxrss / 1024, time.perf_counter() - start)
