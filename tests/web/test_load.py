"""A bounded load test: 2,000 predictions from 8 concurrent clients against the real
`digitnet serve` (uvicorn) on loopback. Every answer must be right; throughput and p99
latency are printed (run with -s to see them), never asserted."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="FastAPI is not installed (the web extra)")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from digitnet.data.images import mnist_like  # noqa: E402
from tests.web.helpers import SHAPE_DIGITS, png, serving, shapes_classifier  # noqa: E402

pytestmark = pytest.mark.slow

CLIENTS = 8
REQUESTS = 2000


def test_two_thousand_requests_from_eight_clients(tmp_path):
    model = tmp_path / "model.npz"
    shapes_classifier().save(model)
    # what a page sends (a 280x280 canvas PNG), and the JSON form, for every shape
    bodies = []
    for shape, digit in SHAPE_DIGITS.items():
        bodies.append((png(shape), "image/png", digit))
        pixels = mnist_like(png(shape)).reshape(-1).tolist()
        bodies.append((json.dumps(pixels).encode(), "application/json", digit))

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(k: int, url: str) -> None:
        mine, bad = [], []
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(k, REQUESTS, CLIENTS):
                body, ctype, digit = bodies[i % len(bodies)]
                t = time.perf_counter()
                try:
                    r = http.post("/api/predict", content=body, headers={"content-type": ctype})
                    ok = r.status_code == 200 and r.json()["digit"] == digit
                    if not ok:
                        bad.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    bad.append(repr(exc))
                mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    with serving(model) as url:
        threads = [threading.Thread(target=client, args=(k, url)) for k in range(CLIENTS)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        elapsed = time.perf_counter() - start
        assert not any(t.is_alive() for t in threads), "clients still running after 300 s"
        assert httpx.get(url + "/api/model").status_code == 200  # still serving afterwards

    assert errors == [], f"{len(errors)} errors, first: {errors[:3]}"
    assert len(latencies) == REQUESTS
    ms = np.asarray(latencies) * 1000
    print(f"\nload: {REQUESTS} requests from {CLIENTS} clients in {elapsed:.2f} s: "
          f"{REQUESTS / elapsed:.0f} requests/s; latency p50 {np.percentile(ms, 50):.1f} ms, "
          f"p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms")
