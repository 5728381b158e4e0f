"""What augmentation costs: epochs of 784-1024-1024-10 with and without it, side by side.

    DIGITNET_DATA=/path/to/mnist .venv/bin/python -m benchmarks.bench_augment [--threads 2] [--quick]

In one worker process pinned to ``--threads`` threads, the same network (the ``mlp-best``
recipe's shape, dropout, Adam learning rate and batch size, float32) trains on the full
training set with the recipe's augmentation and without it, epochs alternating (after one
warm-up epoch of each), so both see the same machine. Plain batches are gathered a chunk
ahead in a background thread; augmented chunks are distorted between steps on every thread
(``digitnet.train``). "Augmenting alone" is the augmentation of 60,000 images with nothing
else running. Target (issue 13): an augmented epoch within 1.2x of the
plain one. Prints a table, then the JSON.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks import common

MODULE = "benchmarks.bench_augment"
TARGET = 1.2


def worker(epochs: int) -> dict[str, Any]:
    from digitnet.data.augment import Augmenter
    from digitnet.data.scaling import Normalizer
    from digitnet.nn import Adam, SoftmaxCrossEntropy, mlp
    from digitnet.recipes import load_recipe
    from digitnet.train import fit

    x, y, _, _ = common.load_mnist_arrays()
    spec = load_recipe("mlp-best").faithful
    augment = Augmenter.from_config(spec.data.augment)
    norm = Normalizer("unit").fit(x)
    sides = {
        name: (mlp([784, *spec.model.hidden, 10], dropout=spec.model.dropout, rng=0),
               Adam(spec.training.lr), aug)
        for name, aug in (("plain", None), ("augmented", augment))
    }
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    augment_alone: list[float] = []
    for r in range(epochs + 1):
        for name in sides if r % 2 else list(sides)[::-1]:
            model, opt, aug = sides[name]
            h = fit(
                model,
                SoftmaxCrossEntropy(),
                opt,
                x,
                y,
                epochs=1,
                batch_size=spec.training.batch_size,
                preprocess=norm,
                augment=aug,
                seed=r,
                progress=False,
            )
            if r:  # round 0 warms up
                seconds[name].append(h.seconds[0])
        if r:
            import numpy as np

            t = time.perf_counter()
            for i in range(0, len(x), 2048):
                augment(x[i : i + 2048], np.random.default_rng([r, i]))
            augment_alone.append(time.perf_counter() - t)
    plain, augmented = common.median(seconds["plain"]), common.median(seconds["augmented"])
    return {
        "arch": f"784-{'-'.join(map(str, spec.model.hidden))}-10",
        "batch": spec.training.batch_size,
        "augment": spec.data.augment,
        "plain_epoch_s": plain,
        "augmented_epoch_s": augmented,
        "ratio": augmented / plain,
        "target": TARGET,
        "met": augmented / plain <= TARGET,
        "augmentation_alone_s": common.median(augment_alone),
        "epochs_s": seconds,
        "blas": common.blas_threads(),
        "peak_rss_mb": common.peak_rss_mb(),
    }


def worker_main(argv: list[str]) -> None:
    args = common.worker_args(MODULE, argv, epochs=3)
    common.emit(worker(args.epochs))


def run(args: Any) -> dict[str, Any]:
    epochs = 2 if args.quick else 3
    result = common.run_worker(
        MODULE, ["--worker", "digitnet", "--epochs", str(epochs)], args.threads, timeout=3600
    )
    return {"environment": common.environment(args.threads), **result}


def render(result: dict[str, Any]) -> str:
    rows = [
        [
            result["arch"],
            result["batch"],
            f"{result['plain_epoch_s']:.2f}",
            f"{result['augmented_epoch_s']:.2f}",
            f"{result['ratio']:.2f} (≤{TARGET}) {'met' if result['met'] else 'MISSED'}",
            f"{result['augmentation_alone_s']:.2f}",
        ]
    ]
    return (
        "Augmented epoch vs plain epoch (medians; augmentation between steps, on every thread)\n\n"
        + common.table(["arch", "batch", "plain s", "augmented s", "ratio", "augmenting 60k alone s"], rows)
    )


if __name__ == "__main__":
    common.bench_main(sys.argv[1:], __doc__, worker_main, run, render)
