"""Shared helpers for the benchmarks: thread pinning, data, timing, memory, output.

Thread pinning. BLAS and OpenMP read their thread counts when the library is first
loaded, so :func:`pin_threads` sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
``MKL_NUM_THREADS`` and, if the running process was started without them, re-executes
itself with them set (before numpy or torch has done any work). Workers that use torch
also call ``torch.set_num_threads(n)`` (see :func:`torch_threads`). Every side of a
comparison runs in its own worker process with the same ``n``, so no thread pool of one
library spins while the other one is being timed.

Timing. Each side runs warm-up epochs first (the first touch of fresh memory is slow on
these machines, and BLAS sets up its buffers), then several timed ones; figures are
medians. Wall-clock ``time.perf_counter``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_THREADS = 2
ROOT = Path(__file__).resolve().parent.parent
_REEXEC_MARK = "DIGITNET_BENCH_PINNED"


def thread_env(n: int) -> dict[str, str]:
    """The environment a worker with ``n`` threads runs in."""
    env = dict(os.environ)
    env.update({var: str(n) for var in THREAD_VARS})
    env[_REEXEC_MARK] = str(n)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), src, env.get("PYTHONPATH", "")) if p)
    return env


def pin_threads(n: int) -> None:
    """Make sure this process runs with ``n`` BLAS/OpenMP threads: if the environment
    variables are not already set to ``n``, set them and re-execute this same command."""
    if all(os.environ.get(var) == str(n) for var in THREAD_VARS):
        return
    if os.environ.get(_REEXEC_MARK) == str(n):  # already re-executed once: do not loop
        return
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], thread_env(n))


def torch_threads(n: int) -> Any:
    """Import torch and pin its intra-op pool to ``n`` threads (inter-op to 1)."""
    import torch

    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # allowed once, before any parallel work
        torch.set_num_interop_threads(1)
    return torch


def blas_threads() -> list[dict[str, Any]]:
    """What threadpoolctl sees: each loaded BLAS/OpenMP library and its thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"api": i.get("internal_api"), "threads": i.get("num_threads"),
             "version": i.get("version")} for i in threadpool_info()]


def data_dir() -> str | None:
    return os.environ.get("DIGITNET_DATA") or None


def load_mnist_arrays() -> tuple[Any, Any, Any, Any]:
    """Full MNIST as ``(x_train uint8 (60000, 784), y_train int64, x_test, y_test)``."""
    from digitnet.data.datasets import load_mnist

    ds = load_mnist(data_dir(), progress=False, verify=False)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes (wall clock)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def repeat_timed(fn: Callable[[], Any], *, warmup: int, repeats: int) -> list[float]:
    """``warmup`` untimed calls, then the wall-clock seconds of ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    return [timed(fn) for _ in range(repeats)]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sgemm_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matrix-product rate of this process's BLAS, in GFLOP/s (square ``size``)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    c = np.empty_like(a)
    np.matmul(a, b, out=c)  # warm-up
    best = min(timed(lambda: np.matmul(a, b, out=c)) for _ in range(repeats))
    return 2.0 * size**3 / best / 1e9


def environment(threads: int) -> dict[str, Any]:
    """Machine, library versions, thread settings and the time: the conditions of a run."""
    import numpy as np

    info: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus_online": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "threads": threads,
        "thread_env": {var: os.environ.get(var) for var in THREAD_VARS},
    }
    for mod in ("torch", "sklearn"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- worker processes ------------------------------------------------------------------------
def run_worker(module: str, args: Sequence[str], threads: int, timeout: float = 600) -> dict[str, Any]:
    """Run ``python -m <module> --worker ...`` in a fresh process pinned to ``threads`` and
    return the JSON object it prints on its last line of output."""
    cmd = [sys.executable, "-m", module, *args, "--threads", str(threads)]
    proc = subprocess.run(cmd, cwd=ROOT, env=thread_env(threads), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"worker {' '.join(cmd)} printed no JSON:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def emit(result: dict[str, Any]) -> None:
    """A worker's answer: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


# -- output -----------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (also readable in a terminal)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)


def write_json(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def base_parser(description: str):
    """The options every benchmark takes: ``--threads``, ``--json``, ``--quick``."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"BLAS/OpenMP/torch threads for every side (default {DEFAULT_THREADS})")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats (a smoke run; figures are noisier)")
    return parser


def torch_epoch(model: Any, opt: Any, loss_fn: Any, x: Any, y: Any, batch: int, gen: Any,
                n: int | None = None) -> tuple[float, int]:
    """One epoch of the reference PyTorch loop over pre-loaded tensors (the first ``n``
    rows, reshuffled by ``gen``): the same work as digitnet's ``fit`` step, including a
    running loss and accuracy. Returns ``(loss sum, correct)``."""
    import torch

    n = len(x) if n is None else n
    perm = torch.randperm(n, generator=gen)
    loss_sum, correct = 0.0, 0
    for start in range(0, n, batch):
        idx = perm[start : start + batch]
        xb, yb = x[idx], y[idx]
        out = model(xb)
        loss = loss_fn(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(idx)
        correct += int((out.argmax(1) == yb).sum().item())
    return loss_sum, correct


def bench_main(argv: Sequence[str] | None, doc: str, worker_main: Callable[[list[str]], None],
               run: Callable[[Any], dict[str, Any]], render: Callable[[dict[str, Any]], str],
               add_arguments: Callable[[Any], None] | None = None) -> None:
    """A benchmark's entry point: ``--worker ...`` runs one side in this process;
    otherwise ``run(args)`` compares the sides and the table and the JSON are printed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--worker" in argv:
        worker_main(argv)
        return
    parser = base_parser(doc.splitlines()[0])
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    result = run(args)
    print(render(result))
    print(json.dumps(result))
    if args.json:
        write_json(args.json, result)


def worker_args(name: str, argv: Sequence[str], **extra: Any) -> Any:
    """Parse a worker's command line (``--worker digitnet|torch`` plus the common options
    and ``extra`` as ``--name`` with that default) and pin its threads."""
    parser = base_parser(f"{name} worker")
    parser.add_argument("--worker", required=True, choices=["digitnet", "torch"])
    for option, default in extra.items():
        parser.add_argument(f"--{option}", type=int, default=default)
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    if args.worker == "digitnet":  # as the digitnet command does for its own process
        from digitnet import heap

        heap.keep_freed_memory()
    return args
