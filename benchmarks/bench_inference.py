"""Inference: throughput at batch 1,000 and single-image latency, digitnet vs PyTorch.

    .venv/bin/python -m benchmarks.bench_inference [--threads 2] [--quick] [--json FILE]

The network is the default recipe's 784-256-10 (briefly trained: 1 epoch, so the
outputs are those of a real classifier; speed does not depend on the weights). Both
sides start from raw uint8 test images and return class labels:

* digitnet: ``Classifier.predict(images)`` (the public API: input validation,
  ``Normalizer`` scaling, forward pass in evaluation mode, argmax, label lookup).
* torch: ``torch.from_numpy(images).float().div_(255)``, the same network copied into
  ``torch.nn.Sequential``, ``argmax`` under ``torch.inference_mode()``.

Throughput: images/s of a 1,000-image batch (median of repeated calls after warm-up).
Latency: one image (a 784-vector) per call, median and 90th percentile in µs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks import common

MODULE = "benchmarks.bench_inference"
BATCH = 1000
LATENCY_TARGET_US = 100.0


def _classifier() -> tuple[Any, np.ndarray]:
    """A default-recipe Classifier trained for one epoch, and the uint8 test images."""
    from digitnet.estimator import MLPClassifier

    x, y, xt, _ = common.load_mnist_arrays()
    est = MLPClassifier((256,), optimizer="adam", lr=2e-3, epochs=1, seed=0)
    est.fit(x, y)
    return est.classifier_, xt


def _measure(batch_fn: Any, single_fn: Any, images: np.ndarray, quick: bool) -> dict[str, Any]:
    reps, singles = (20, 500) if quick else (100, 3000)
    batch = images[:BATCH]
    batch_s = common.repeat_timed(lambda: batch_fn(batch), warmup=5, repeats=reps)
    lat = []
    for i in range(200):  # warm-up
        single_fn(images[i])
    for i in range(singles):
        img = images[i % len(images)]
        t0 = time.perf_counter()
        single_fn(img)
        lat.append(time.perf_counter() - t0)
    lat_us = np.array(lat) * 1e6
    return {"batch_s": common.median(batch_s), "images_per_s": BATCH / common.median(batch_s),
            "latency_us_median": float(np.median(lat_us)),
            "latency_us_p90": float(np.percentile(lat_us, 90))}


def worker_digitnet(quick: bool) -> dict[str, Any]:
    clf, xt = _classifier()
    res = _measure(clf.predict, clf.predict, xt, quick)
    res["accuracy_check"] = float(np.mean(clf.predict(xt) == common.load_mnist_arrays()[3]))
    return {"side": "digitnet", **res}


def worker_torch(quick: bool, threads: int) -> dict[str, Any]:
    torch = common.torch_threads(threads)
    clf, xt = _classifier()
    layers: list[Any] = []
    for layer in clf.model.layers:
        if type(layer).__name__ == "Linear":
            lin = torch.nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.params["weight"].T.copy()))
                lin.bias.copy_(torch.from_numpy(layer.params["bias"]))
            layers.append(lin)
        else:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).eval()

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            xb = torch.from_numpy(images.reshape(-1, 784)).float().div_(255)
            return model(xb).argmax(1).numpy()

    res = _measure(predict, predict, xt, quick)
    res["agrees_with_digitnet"] = float(np.mean(predict(xt) == clf.predict(xt)))
    return {"side": "torch", "torch_threads": torch.get_num_threads(), **res}


def worker_main(argv: list[str]) -> None:
    args = common.worker_args("bench_inference", argv)
    if args.worker == "digitnet":
        common.emit(worker_digitnet(args.quick))
    else:
        common.emit(worker_torch(args.quick, args.threads))


def run(threads: int = common.DEFAULT_THREADS, quick: bool = False, log: Any = print) -> dict[str, Any]:
    res: dict[str, Any] = {"benchmark": "inference", "threads": threads, "quick": quick,
                           "batch": BATCH, "latency_target_us": LATENCY_TARGET_US}
    for side in ("digitnet", "torch"):
        log(f"  inference: {side} ...", flush=True)
        res[side] = common.run_worker(MODULE, ["--worker", side, *(["--quick"] if quick else [])],
                                      threads)
    d, t = res["digitnet"], res["torch"]
    res["throughput_ratio"] = d["images_per_s"] / t["images_per_s"]
    res["latency_ratio"] = d["latency_us_median"] / t["latency_us_median"]
    res["met"] = {"latency": d["latency_us_median"] <= LATENCY_TARGET_US}
    return res


def render(result: dict[str, Any]) -> str:
    headers = ["side", f"images/s (batch {BATCH})", "1-image latency µs (median)", "p90 µs"]
    rows = [[side, result[side]["images_per_s"], result[side]["latency_us_median"],
             result[side]["latency_us_p90"]] for side in ("digitnet", "torch")]
    rows.append(["digitnet / torch", f"{result['throughput_ratio']:.2f}× throughput",
                 f"{result['latency_ratio']:.2f}× latency", ""])
    ok = result["met"]["latency"]
    return (common.table(headers, rows)
            + f"\n\nSingle-image latency ≤ {LATENCY_TARGET_US:.0f} µs: {'met' if ok else 'MISSED'}.")


def main(argv: list[str] | None = None) -> None:
    common.bench_main(argv, __doc__, worker_main, lambda args: run(args.threads, args.quick), render)


if __name__ == "__main__":
    main()
