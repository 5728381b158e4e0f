"""Time to 98.0% test accuracy with the default recipe: digitnet vs the same recipe in PyTorch.

    .venv/bin/python -m benchmarks.bench_time_to_accuracy [--threads 2] [--quick] [--json FILE]

The default recipe (``digitnet.spec.RunSpec()``): 784-256-10 ReLU, He-normal
weights and zero biases, Adam (lr 0.002, betas 0.9/0.999, eps 1e-8) with a per-epoch
cosine schedule over 10 epochs, batch 128, shuffled every epoch, trained on the 55,000
images left after the stratified 5,000-image validation split (seed 0).

Both sides train for up to 10 epochs and are scored on the 10,000 test images after each
epoch, outside the timed region. The time to target is the training-loop time (gather,
scale, forward, backward, update) up to the end of the first epoch whose test accuracy is
>= 98.0%: that number of epochs times the median epoch time (every epoch does the same
work); the plain sum of those epochs' times is shown beside it. digitnet runs ``fit`` exactly as ``digitnet
train`` does (uint8 images scaled per batch; its per-epoch validation pass is excluded
from the time, as torch has none). torch runs a plain loop over pre-loaded float32
tensors with ``torch.optim.Adam`` (default implementation) and a ``LambdaLR`` cosine
factor. Before timing, each side trains a throw-away copy of the network for 100 steps
(first touch of memory, BLAS buffers).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from benchmarks import common

MODULE = "benchmarks.bench_time_to_accuracy"
TARGET_ACCURACY = 0.98
TARGET_SECONDS = 12.0
WARMUP_STEPS = 100


def _recipe_data() -> tuple[Any, ...]:
    """The default run spec, its prepared data (uint8 images, class indices) and the training
    settings the torch side copies: ``(spec, data, hidden, lr, batch_size, epochs, seed)``."""
    from digitnet.experiment import load_data
    from digitnet.spec import RunSpec

    spec = RunSpec()
    data = load_data(spec, common.data_dir(), fetch=False, log=lambda *a, **k: None)
    t = spec.training
    return spec, data, tuple(spec.model.hidden), t.lr, t.batch_size, t.epochs, t.seed


def _time_to_target(seconds: list[float], accuracy: list[float]) -> dict[str, Any]:
    """The first epoch at the target accuracy, and the training time to reach it: that
    many epochs at the median epoch time (every epoch does the same work, so this is robust
    to a slow epoch caused by another process), and the plain sum of those epochs' times."""
    for epoch, acc in enumerate(accuracy, start=1):
        if acc >= TARGET_ACCURACY:
            return {"epoch_reached": epoch, "time_to_target_s": epoch * common.median(seconds),
                    "time_to_target_sum_s": sum(seconds[:epoch])}
    return {"epoch_reached": None, "time_to_target_s": None, "time_to_target_sum_s": None}


def worker_digitnet(epochs: int | None) -> dict[str, Any]:
    from digitnet.spec import build
    from digitnet.train import evaluate, fit

    spec, data, _, _, batch, n_epochs, seed = _recipe_data()
    x, y, xv, yv, xt, yt = (data.x_train, data.y_train, data.x_valid, data.y_valid, data.x_test,
                            data.y_test)
    norm = data.train_scale
    # warm-up: a throw-away network, same shapes, 100 steps
    model, loss, opt = build(spec, x.shape[1], 10, len(x))
    fit(model, loss, opt, x[: WARMUP_STEPS * batch], y[: WARMUP_STEPS * batch],
        epochs=1, batch_size=batch, preprocess=norm, progress=False)

    model, loss, opt = build(spec, x.shape[1], 10, len(x))
    test_acc: list[float] = []

    def score(epoch: int, history: Any) -> None:
        test_acc.append(evaluate(model, loss, xt, yt, preprocess=norm)[1])

    t0 = time.perf_counter()
    history = fit(model, loss, opt, x, y, epochs=epochs or n_epochs, batch_size=batch,
                  preprocess=norm, validation_data=(xv, yv), seed=seed, progress=False,
                  on_epoch_end=score)
    wall = time.perf_counter() - t0
    return {"side": "digitnet", "epoch_s": history.seconds, "test_accuracy": test_acc,
            **_time_to_target(history.seconds, test_acc), "train_s": sum(history.seconds),
            "wall_with_validation_and_scoring_s": wall, "final_test_accuracy": test_acc[-1],
            "n_train": len(x)}


def worker_torch(epochs: int | None, threads: int) -> dict[str, Any]:
    torch = common.torch_threads(threads)
    _, data, hidden, lr, batch, recipe_epochs, seed = _recipe_data()
    x, y, xt, yt = data.x_train, data.y_train, data.x_test, data.y_test
    n_epochs = epochs or recipe_epochs
    scale = np.float32(1 / 255)
    xtr = torch.from_numpy(x.astype(np.float32) * scale)
    ytr = torch.from_numpy(y)
    xte = torch.from_numpy(xt.astype(np.float32) * scale)
    yte = torch.from_numpy(yt)
    torch.manual_seed(seed)

    def build() -> tuple[Any, Any, Any]:
        sizes = [x.shape[1], *hidden, 10]
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            lin = torch.nn.Linear(a, b)
            torch.nn.init.kaiming_normal_(lin.weight, mode="fan_in", nonlinearity="relu")
            torch.nn.init.zeros_(lin.bias)
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: 0.5 * (1 + math.cos(math.pi * min(e, recipe_epochs) / recipe_epochs)))
        return model, opt, sched

    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    bs = batch

    def train_epoch(model: Any, opt: Any, n: int) -> None:
        common.torch_epoch(model, opt, loss_fn, xtr, ytr, bs, gen, n)

    warm_model, warm_opt, _ = build()
    train_epoch(warm_model, warm_opt, WARMUP_STEPS * bs)

    model, opt, sched = build()
    seconds, test_acc = [], []
    for _ in range(n_epochs):
        model.train()
        seconds.append(common.timed(lambda: train_epoch(model, opt, len(xtr))))
        sched.step()
        model.eval()
        with torch.inference_mode():
            test_acc.append(float((model(xte).argmax(1) == yte).float().mean()))
    return {"side": "torch", "epoch_s": seconds, "test_accuracy": test_acc,
            **_time_to_target(seconds, test_acc), "train_s": sum(seconds),
            "final_test_accuracy": test_acc[-1], "torch_threads": torch.get_num_threads()}


def worker_main(argv: list[str]) -> None:
    args = common.worker_args("bench_time_to_accuracy", argv, epochs=None)
    if args.worker == "digitnet":
        common.emit(worker_digitnet(args.epochs))
    else:
        common.emit(worker_torch(args.epochs, args.threads))


def run(threads: int = common.DEFAULT_THREADS, quick: bool = False, log: Any = print) -> dict[str, Any]:
    extra = ["--epochs", "2"] if quick else []
    res: dict[str, Any] = {"benchmark": "time_to_accuracy", "threads": threads, "quick": quick,
                           "target_accuracy": TARGET_ACCURACY, "target_seconds": TARGET_SECONDS}
    for side in ("digitnet", "torch"):
        log(f"  time to {TARGET_ACCURACY:.1%}: {side} ...", flush=True)
        res[side] = common.run_worker(MODULE, ["--worker", side, *extra], threads)
    d, t = res["digitnet"]["time_to_target_s"], res["torch"]["time_to_target_s"]
    res["met"] = {
        "within_target_seconds": d is not None and d <= TARGET_SECONDS,
        "sooner_than_torch": d is not None and (t is None or d < t),
    }
    return res


def render(result: dict[str, Any]) -> str:
    headers = ["side", "time to 98.0% (s)", "epoch reached", "median epoch s", "sum of those epochs s",
               "final test acc", "test acc per epoch"]
    rows = []
    for side in ("digitnet", "torch"):
        r = result[side]
        reached = r["time_to_target_s"] is not None
        rows.append([side, r["time_to_target_s"] if reached else "not reached", r["epoch_reached"],
                     common.median(r["epoch_s"]), r.get("time_to_target_sum_s"),
                     f"{r['final_test_accuracy']:.4f}", " ".join(f"{a:.4f}" for a in r["test_accuracy"])])
    met = result["met"]
    within = "met" if met["within_target_seconds"] else "MISSED"
    sooner = "met" if met["sooner_than_torch"] else "MISSED"
    note = f"\n\ndigitnet within {TARGET_SECONDS:.0f} s: {within}; sooner than torch: {sooner}."

    return common.table(headers, rows) + note


def main(argv: list[str] | None = None) -> None:
    common.bench_main(argv, __doc__, worker_main, lambda args: run(args.threads, args.quick), render)


if __name__ == "__main__":
    main()
