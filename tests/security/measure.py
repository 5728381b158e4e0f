"""The table of issue 12: every hostile case run against an older digitnet and this one.

    python -m tests.security.measure --before OLD/src [--only WORD]

``OLD/src`` is the ``src`` directory of the digitnet to compare with (for example
``git archive <commit> src | tar -x -C /tmp/old``); it is put first on ``PYTHONPATH`` for the
"before" runs. Prints a Markdown table: case, before, after, peak memory before -> after.
Slow (it builds gibibyte bombs and waits out server deadlines): not part of the test suite.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.security import hostile
from tests.security.conftest import offline_env
from tests.security.harness import ROOT, Outcome, run_limited
from tests.test_cli import write_tiny_mnist

CLI = ["-m", "digitnet.cli"]
Case = Callable[[Path, dict[str, str]], Outcome]


class Observed(Outcome):
    """An outcome described by what was observed (in ``stderr``), not by an exit status."""

    def describe(self) -> str:
        return self.stderr


def _summary(o: Outcome) -> str:
    text = o.describe()
    lines = [line for line in o.stderr.strip().splitlines() if line.strip()]
    if text in ("one-line error", "error") and lines:
        last = lines[-1].split("error: ", 1)[-1]
        text += f": {last[:90]}{'...' if len(last) > 90 else ''}"
    return text.replace("|", "/")


def _genuine(tmp: Path) -> tuple[Path, Path]:
    from tests.conftest import make_blobs, save_small_model
    from tests.web.helpers import png

    x, y = make_blobs(150, n_classes=3)
    model = save_small_model(tmp / "genuine.npz", x, y)
    image = tmp / "seven.png"
    image.write_bytes(png("seven"))
    return model, image


def cases(tmp: Path) -> dict[str, Case]:
    model, image = _genuine(tmp)
    tiny = write_tiny_mnist(tmp / "tiny", n_train=120, n_test=40)
    out: dict[str, Case] = {}

    def reader(kind: str, build: Callable[[Path], Path]) -> Case:
        def run(d: Path, env: dict[str, str]) -> Outcome:
            return run_limited(["-m", "tests.security.run", kind, str(build(d))], env=env)
        return run

    for name, build in hostile.PICKLES.items():
        out[f"mnist.pkl.gz: {name}"] = reader("pkl", build)
    out["IDX .gz, 1 MB, header claims 10^12 bytes"] = reader("idx", hostile.idx_bomb)
    out["Keras npz, 1 GiB deflated x_train"] = reader("keras", hostile.keras_bomb)
    for name, build in hostile.model_variants(model).items():
        def predict(d: Path, env: dict[str, str], build: Callable[[Path], Path] = build) -> Outcome:
            return run_limited([*CLI, "predict", str(build(d)), str(image)], env=env)
        out[f"model file: {name}"] = predict

    def serve_nan(d: Path, env: dict[str, str]) -> Outcome:
        path = hostile.model_variants(model)["NaN normalisation"](d)
        return run_limited([*CLI, "serve", str(path), "--port", "0"], env=env, timeout=20)
    out["serve on a model with NaN statistics (20 s)"] = serve_nan

    def cache_idx(d: Path, env: dict[str, str]) -> Outcome:
        env = {**env, **offline_env(d)}
        shutil.copytree(tiny, d / "xdg" / "digitnet" / "mnist")
        return run_limited([*CLI, "evaluate", str(model)], env=env)
    out["cache: valid IDX files, wrong content; evaluate"] = cache_idx

    def cache_equivalent(d: Path, env: dict[str, str]) -> Outcome:
        from digitnet.data import load_mnist
        from digitnet.data.catalog import _fingerprint

        env = {**env, **offline_env(d), "DIGITNET_DATA": str(tiny)}
        built = d / "xdg" / "digitnet" / "equivalent" / _fingerprint(load_mnist(tiny, progress=False))
        built.mkdir(parents=True)
        hostile.pkl_segfault(built)
        return run_limited([*CLI, "reproduce", "seed-000", "--out", str(d / "run"), "--no-fetch"], env=env,
                           timeout=300)
    out["cache: crafted pickle in equivalent/; reproduce seed-000"] = cache_equivalent

    def namespace(setup: str, cmd: list[str]) -> list[str]:
        quoted = " ".join(f"'{part}'" for part in cmd)
        return ["-c", "import os, sys; os.execvp('unshare', ['unshare', '-rm', 'sh', '-c', sys.argv[1]])",
                f"{setup} && exec {quoted}"]

    def ro(directory: Path) -> str:
        return (f"mount --bind '{directory}' '{directory}' && "
                f"mount -o remount,bind,ro '{directory}' '{directory}'")

    train = [sys.executable, *CLI, "train", "--hidden", "512", "--epochs", "1", "--valid-size", "0",
             "--no-progress", "--data", str(tiny)]

    def ro_out(d: Path, env: dict[str, str]) -> Outcome:
        (d / "ro").mkdir()
        return run_limited(namespace(ro(d / "ro"), [*train, "--out", str(d / "ro" / "run")]),
                           env={**env, **offline_env(d)})
    out["read-only --out"] = ro_out

    def ro_cache(d: Path, env: dict[str, str]) -> Outcome:
        env = {**env, **offline_env(d), "DIGITNET_DATA": str(tiny)}
        Path(env["XDG_CACHE_HOME"]).mkdir(parents=True)
        cmd = [sys.executable, *CLI, "reproduce", "seed-002", "--out", str(d / "r"), "--no-fetch", "--quiet"]
        return run_limited(namespace(ro(Path(env["XDG_CACHE_HOME"])), cmd), env=env)
    out["read-only cache (reproduce seed-002 builds train.csv)"] = ro_cache

    def full_disk(d: Path, env: dict[str, str]) -> Outcome:
        (d / "small").mkdir()
        setup = f"mount -t tmpfs -o size=1m tmpfs '{d / 'small'}'"
        return run_limited(namespace(setup, [*train, "--out", str(d / "small" / "run")]),
                           env={**env, **offline_env(d)})
    out["full disk (1 MB) under --out"] = full_disk

    def killed_save(d: Path, env: dict[str, str]) -> Outcome:
        o = run_limited(["-c", KILLED_SAVE, str(d)], env=env)
        seen = {0: "the temp file is removed by the next write", 2: "the temp file is left behind for good"}
        return Observed(o.returncode, o.stdout, seen.get(o.returncode, o.describe()), o.peak_mb, o.seconds)
    out["SIGKILL during a save, then another write there"] = killed_save

    def drip(d: Path, env: dict[str, str]) -> Outcome:
        server = subprocess.Popen([sys.executable, "-c", DRIP_SERVER], stdout=subprocess.PIPE, text=True)
        try:
            url = server.stdout.readline().strip()
            code = ("import sys, inspect\nfrom digitnet.data.sources import http_get\n"
                    "kw = {'deadline': 5} if 'deadline' in inspect.signature(http_get).parameters else {}\n"
                    "try:\n http_get(sys.argv[1], timeout=5, **kw)\n"
                    "except OSError as e:\n print('error:', e, file=sys.stderr); sys.exit(1)\n")
            return run_limited(["-c", code, url], env=env, timeout=30)
        finally:
            server.kill()
    out["mirror dripping 1 byte / 0.5 s (deadline 5 s; default 300 s)"] = drip

    out["serve: a request body that never finishes (held 15 s?)"] = functools.partial(_slow_body, model)
    out["serve: 300 idle connections (256 descriptors), valid requests"] = functools.partial(_idle, model)
    return out


KILLED_SAVE = """
import os, pathlib, subprocess, sys
WRITER = '''
import sys, time
from digitnet.atomic import atomic_write
with atomic_write(sys.argv[1]) as f:
    f.write(b"half"); f.flush(); print("writing", flush=True); time.sleep(60)
'''
d = pathlib.Path(sys.argv[1])
w = subprocess.Popen([sys.executable, "-c", WRITER, str(d / "model.npz")], stdout=subprocess.PIPE)
w.stdout.readline(); w.kill(); w.wait()
for p in d.glob(".*.tmp"):
    os.utime(p, (0, 0))  # killed long ago
from digitnet.atomic import atomic_write
with atomic_write(d / "config.json") as f:
    f.write(b"{}")
sys.exit(2 if list(d.glob(".*.tmp")) else 0)
"""

DRIP_SERVER = """
import http.server, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "1000"); self.end_headers()
        for _ in range(1000):
            try:
                self.wfile.write(b"x"); self.wfile.flush(); time.sleep(0.5)
            except OSError:
                return
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(f"http://127.0.0.1:{s.server_address[1]}/f.gz", flush=True)
s.serve_forever()
"""


def _serve(model: Path, d: Path, env: dict[str, str], descriptors: int | None = None
           ) -> tuple[subprocess.Popen, int, Path]:
    import os
    import re
    import resource

    def limit() -> None:
        if descriptors is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    log = d / "serve.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, *CLI, "serve", str(model), "--port", "0"], cwd=ROOT,
                                env={**os.environ, **env}, stdout=f, stderr=subprocess.STDOUT,
                                preexec_fn=limit)
    for _ in range(300):
        found = re.search(r"127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            time.sleep(0.5)
            return proc, int(found.group(1)), log
        time.sleep(0.1)
    raise RuntimeError(log.read_text())


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server; one still waiting for a held request is killed after 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _slow_body(model: Path, d: Path, env: dict[str, str]) -> Outcome:
    proc, port, log = _serve(model, d, env)
    start = time.perf_counter()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=16)
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4000\r\n\r\n[1")
        try:
            answer = sock.recv(100)
        except TimeoutError:
            answer = b""
        held = time.perf_counter() - start
        sock.close()
    finally:
        _stop(proc)
    status = answer.split(b"\r\n")[0].decode() or "no answer"
    return Observed(0, "", f"{status} after {held:.1f} s" + ("" if answer else ", still held"),
                    float("nan"), held)


def _request(port: int) -> str:
    """The status line of ``GET /api/model``, or what went wrong (5 s at most)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api/model HTTP/1.1\r\nHost: t\r\n\r\n")
            return s.recv(100).split(b"\r\n")[0].decode().removeprefix("HTTP/1.1 ") or "closed"
    except (TimeoutError, OSError) as exc:
        return type(exc).__name__


def _idle(model: Path, d: Path, env: dict[str, str]) -> Outcome:
    """300 idle connections to a server allowed 256 file descriptors; a valid request at once
    and after 12 s; how many idle ones the server still holds then; tracebacks in its log."""
    proc, port, log = _serve(model, d, env, descriptors=256)
    socks: list[socket.socket] = []
    try:
        for _ in range(300):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        time.sleep(1)
        first = _request(port)
        time.sleep(12)  # past the header deadline
        later = _request(port)
        held = sum(1 for s in socks if _still_open(s))
    finally:
        for s in socks:
            s.close()
        _stop(proc)
    text = log.read_text()
    return Observed(0, "", f"valid request: {first}, after 13 s: {later}; idle connections held after 13 s: "
                           f"{held}; log: {text.count('Traceback')} tracebacks, {len(text) // 1024} kB",
                    float("nan"), 0.0)


def _still_open(sock: socket.socket) -> bool:
    """Whether the server has not closed ``sock`` (what it sent is read and dropped)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="src directory of the digitnet to compare with")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="digitnet-measure-"))
    table = ["| case | before | after | peak memory (MB), before -> after |", "| --- | --- | --- | --- |"]
    for name, case in cases(base).items():
        if args.only not in name:
            continue
        results = []
        for label, env in (("before", {"PYTHONPATH": str(Path(args.before).resolve())}), ("after", {})):
            d = base / f"{len(table)}-{label}"
            d.mkdir()
            results.append(case(d, env))
        b, a = results
        mem = " -> ".join("-" if np.isnan(o.peak_mb) else f"{o.peak_mb:.0f}" for o in results)
        line = f"| {name} | {_summary(b)} | {_summary(a)} | {mem} |"
        table.append(line)
        print(line, flush=True)
    print("\n".join(table))


if __name__ == "__main__":
    main()
