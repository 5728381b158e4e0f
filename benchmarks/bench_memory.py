"""Peak resident memory of a full-MNIST training run, in a fresh process.

    .venv/bin/python -m benchmarks.bench_memory [--epochs 2] [--threads 2] [--json FILE]

digitnet: ``digitnet.experiment.run_training`` with the default recipe (what
``digitnet train`` runs: load the IDX files, stratified split, train with per-epoch
validation, score the test set, write the run directory to a temporary folder).
Reference: the same data and network in PyTorch, images pre-loaded as float32 tensors
(the usual way), trained for the same number of epochs. Each runs in its own new
process; the figure is that process's ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
Memory does not grow after the first epoch, so 2 epochs (the default) stand for 10.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks import common

MODULE = "benchmarks.bench_memory"
TARGET_MB = 200.0


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_digitnet(epochs: int) -> dict[str, Any]:
    import numpy  # noqa: F401  (counted in the baseline)

    import digitnet.experiment as experiment
    from digitnet.spec import RunSpec

    after_import = _rss_now_mb()
    spec = RunSpec().replace(epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        result = experiment.run_training(spec, data_dir=common.data_dir(), out=Path(tmp) / "run",
                                         progress=False, log=lambda *a, **k: None)
    return {"side": "digitnet", "peak_rss_mb": common.peak_rss_mb(), "rss_after_imports_mb": after_import,
            "epochs": epochs, "test_accuracy": result.metrics["test_accuracy"]}


def worker_torch(epochs: int, threads: int) -> dict[str, Any]:
    import numpy as np

    torch = common.torch_threads(threads)
    from digitnet.experiment import load_data
    from digitnet.spec import RunSpec

    after_import = _rss_now_mb()
    spec = RunSpec().replace(epochs=epochs)
    data = load_data(spec, common.data_dir(), fetch=False, log=lambda *a, **k: None)
    x, y, xt, yt = data.x_train, data.y_train, data.x_test, data.y_test
    lr, batch_size = spec.training.lr, spec.training.batch_size
    scale = np.float32(1 / 255)
    xtr, ytr = torch.from_numpy(x.astype(np.float32) * scale), torch.from_numpy(y)
    xte, yte = torch.from_numpy(xt.astype(np.float32) * scale), torch.from_numpy(yt)
    del x, xt, data
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        perm = torch.randperm(len(xtr))
        for start in range(0, len(xtr), batch_size):
            idx = perm[start : start + batch_size]
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.inference_mode():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return {"side": "torch", "peak_rss_mb": common.peak_rss_mb(), "rss_after_imports_mb": after_import,
            "epochs": epochs, "test_accuracy": acc}


def worker_main(argv: list[str]) -> None:
    args = common.worker_args("bench_memory", argv, epochs=2)
    if args.worker == "digitnet":
        common.emit(worker_digitnet(args.epochs))
    else:
        common.emit(worker_torch(args.epochs, args.threads))


def run(threads: int = common.DEFAULT_THREADS, quick: bool = False, log: Any = print,
        epochs: int = 2) -> dict[str, Any]:
    res: dict[str, Any] = {"benchmark": "memory", "threads": threads, "epochs": epochs,
                           "target_mb": TARGET_MB}
    for side in ("digitnet", "torch"):
        log(f"  memory: {side} ...", flush=True)
        res[side] = common.run_worker(MODULE, ["--worker", side, "--epochs", str(epochs)], threads)
    res["met"] = {"peak_rss": res["digitnet"]["peak_rss_mb"] <= TARGET_MB}
    return res


def render(result: dict[str, Any]) -> str:
    headers = ["side", "peak RSS MB", "RSS after imports MB", "epochs", "test acc"]
    rows = [[side, result[side]["peak_rss_mb"], result[side]["rss_after_imports_mb"],
             result[side]["epochs"], f"{result[side]['test_accuracy']:.4f}"]
            for side in ("digitnet", "torch")]
    ok = result["met"]["peak_rss"]
    return common.table(headers, rows) + f"\n\nPeak RSS ≤ {TARGET_MB:.0f} MB: {'met' if ok else 'MISSED'}."


def main(argv: list[str] | None = None) -> None:
    common.bench_main(
        argv, __doc__, worker_main, lambda args: run(args.threads, args.quick, epochs=args.epochs), render,
        lambda parser: parser.add_argument("--epochs", type=int, default=2,
                                           help="training epochs (default 2)"))


if __name__ == "__main__":
    main()
