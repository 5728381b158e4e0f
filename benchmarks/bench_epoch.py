"""Training-epoch time on full MNIST: digitnet vs PyTorch CPU vs scikit-learn, side by side.

    .venv/bin/python -m benchmarks.bench_epoch [--threads 2] [--quick] [--json FILE]

For each case (784-128-10 at batch 32, 100, 1000; 784-512-512-10 at batch 128), three
worker processes, each pinned to the same number of threads, train the same network
(ReLU, float32, plain SGD lr 0.05, no momentum, no weight decay, reshuffled every epoch)
for a warm-up epoch and then timed ones. The sides take turns, in two rounds of fresh
workers; the table shows the medians of all timed epochs and their ratios.

* digitnet: ``digitnet.train.fit`` exactly as users call it, on the uint8 images with a
  ``Normalizer("unit")`` scaling each batch into a reused float32 buffer; the epoch time
  is ``History.seconds`` (the batch loop: gather, scale, forward, loss, backward, update,
  running loss and accuracy). Between its training epochs the same worker times the
  *matrix products alone* of the same epoch (same shapes, float32 slices of the pre-scaled
  training set, no other work), so both see the same conditions; then a phase profile and
  the BLAS sgemm peak, to show how close the epoch is to its floors.
* torch: ``torch.nn.Sequential`` of ``Linear``/``ReLU``, ``CrossEntropyLoss``,
  ``torch.optim.SGD``; images pre-loaded as one float32 tensor (already divided by 255),
  ``randperm`` each epoch, batches by index; the loop also accumulates ``loss.item()``
  and the number correct, as ``fit`` does.
* sklearn: ``MLPClassifier(solver="sgd", momentum=0, alpha=0)`` on pre-scaled float32
  images, one ``partial_fit`` call per epoch (it shuffles each call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import common

MODULE = "benchmarks.bench_epoch"
CASES: list[tuple[tuple[int, ...], int]] = [
    ((784, 128, 10), 32),
    ((784, 128, 10), 100),
    ((784, 128, 10), 1000),
    ((784, 512, 512, 10), 128),
]
LR = 0.05
# targets from issue 7: digitnet / torch epoch-time ratio, by case
TORCH_TARGETS = {((784, 128, 10), 32): 0.5, ((784, 128, 10), 100): 0.65,
                 ((784, 512, 512, 10), 128): 0.8}
SKLEARN_SPEEDUP_TARGET = 1.7
FLOOR_TARGET = 1.5  # epoch / matmul-only, for 784-128-10 at batch 100 and 1000
FLOOR_CASES = {((784, 128, 10), 100), ((784, 128, 10), 1000)}


def epoch_flops(sizes: tuple[int, ...], n: int) -> float:
    """FLOPs of one epoch's matrix products: forward ``x @ W``, backward ``x.T @ g`` for
    every layer and ``g @ W.T`` for every layer but the first (its input needs none)."""
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return 2.0 * n * (3 * sum(macs) - macs[0])


# -- workers -----------------------------------------------------------------------------------
def worker_digitnet(sizes: tuple[int, ...], batch: int, warmup: int, epochs: int) -> dict[str, Any]:
    from digitnet.data.scaling import Normalizer
    from digitnet.nn import SGD, SoftmaxCrossEntropy, mlp
    from digitnet.train import fit

    x, y, _, _ = common.load_mnist_arrays()
    norm = Normalizer("unit").fit(x)
    model = mlp(list(sizes), rng=0)
    loss, opt = SoftmaxCrossEntropy(), SGD(LR)
    floor_epoch = matmul_only(sizes, batch, norm.transform(x))
    fit(model, loss, opt, x, y, epochs=warmup, batch_size=batch, preprocess=norm, progress=False, seed=0)
    floor_epoch()  # warm-up
    # training epochs and matmul-only epochs alternate, so both see the same conditions
    seconds, floor = [], []
    for epoch in range(epochs):
        history = fit(model, loss, opt, x, y, epochs=1, batch_size=batch, preprocess=norm,
                      progress=False, seed=epoch + 1)
        seconds.append(history.seconds[0])
        floor.append(common.timed(floor_epoch))
    phases = phase_profile(model, x, y, batch, norm, epochs=2)
    return {"side": "digitnet", "epoch_s": common.median(seconds), "epochs_s": seconds,
            "phases_s": phases,
            "train_accuracy_last": history.train_accuracy[-1],
            "matmul_only_s": common.median(floor), "matmul_only_all_s": floor,
            "sgemm_peak_gflops": common.sgemm_peak(),
            "blas": common.blas_threads(), "peak_rss_mb": common.peak_rss_mb()}


PHASES = ("data: gather + scale", "Linear forward", "activation forward", "loss + accuracy",
          "Linear backward", "activation backward", "optimizer")


def phase_profile(model: Any, x: np.ndarray, y: np.ndarray, batch: int, norm: Any,
                  epochs: int) -> dict[str, float]:
    """Where a training epoch's time goes: the same steps as ``fit`` (its batch iterator,
    then forward, loss, accuracy, backward and update, layer by layer) with a clock read
    between phases. Seconds per epoch per phase (mean of ``epochs``)."""
    import time

    from digitnet.nn import SGD, Linear, SoftmaxCrossEntropy
    from digitnet.train import _Batches

    loss, opt = SoftmaxCrossEntropy(), SGD(LR)
    params = model.parameters()
    layers = model.layers
    batches = _Batches(x, y, batch, norm, model.dtype)
    rng = np.random.default_rng(1)
    clock = time.perf_counter_ns
    total = dict.fromkeys(PHASES, 0)
    kind = ["Linear" if isinstance(layer, Linear) else "activation" for layer in layers]
    for _ in range(epochs):
        it = batches(rng.permutation(len(x)))
        t = clock()
        for xb, yb in it:
            t1 = clock()
            total["data: gather + scale"] += t1 - t
            h = xb
            for layer, k in zip(layers, kind, strict=True):
                t = t1
                h = layer.forward(h)
                t1 = clock()
                total[f"{k} forward"] += t1 - t
            loss.forward(h, yb)
            np.count_nonzero(loss.predict_labels(h) == yb)
            g = loss.backward()
            t = clock()
            total["loss + accuracy"] += t - t1
            for i in range(len(layers) - 1, -1, -1):
                g = layers[i].backward(g, need_input_grad=i > 0)
                t1 = clock()
                total[f"{kind[i]} backward"] += t1 - t
                t = t1
            opt.step(params)
            t = clock()
            total["optimizer"] += t - t1
    return {k: v / epochs / 1e9 for k, v in total.items()}


def matmul_only(sizes: tuple[int, ...], batch: int, xf: np.ndarray) -> Callable[[], None]:
    """An epoch of just the matrix products a training epoch does, with the same shapes and
    preallocated outputs: nothing else (no activation, loss, update, gather)."""
    rng = np.random.default_rng(0)
    n = len(xf)
    weights = [(rng.standard_normal((a, b), dtype=np.float32) * 0.05) for a, b in
               zip(sizes[:-1], sizes[1:], strict=True)]
    grads = [np.empty_like(w) for w in weights]

    def buffers(m: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        acts = [np.empty((m, w.shape[1]), dtype=np.float32) for w in weights]
        deltas = [rng.standard_normal((m, w.shape[1]), dtype=np.float32) for w in weights]
        return acts, deltas

    per_size = {m: buffers(m) for m in {batch, n % batch or batch}}

    def epoch() -> None:
        for start in range(0, n, batch):
            xb = xf[start : start + batch]
            acts, deltas = per_size[len(xb)]
            inp = xb
            for w, a in zip(weights, acts, strict=True):  # forward
                np.matmul(inp, w, out=a)
                inp = a
            for i in range(len(weights) - 1, -1, -1):  # backward
                below = acts[i - 1] if i else xb
                np.matmul(below.T, deltas[i], out=grads[i])
                if i:
                    np.matmul(deltas[i], weights[i].T, out=deltas[i - 1])

    return epoch


def worker_torch(sizes: tuple[int, ...], batch: int, warmup: int, epochs: int, threads: int
                 ) -> dict[str, Any]:
    torch = common.torch_threads(threads)
    x, y, _, _ = common.load_mnist_arrays()
    xt = torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
    yt = torch.from_numpy(y)
    torch.manual_seed(0)
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    n = len(xt)
    acc: list[float] = []

    def epoch() -> None:
        _, correct = common.torch_epoch(model, opt, loss_fn, xt, yt, batch, gen)
        acc.append(correct / n)

    seconds = common.repeat_timed(epoch, warmup=warmup, repeats=epochs)
    return {"side": "torch", "epoch_s": common.median(seconds), "epochs_s": seconds,
            "train_accuracy_last": acc[-1], "torch_threads": torch.get_num_threads(),
            "blas": common.blas_threads()}


def worker_sklearn(sizes: tuple[int, ...], batch: int, warmup: int, epochs: int) -> dict[str, Any]:
    import warnings

    from sklearn.neural_network import MLPClassifier

    x, y, _, _ = common.load_mnist_arrays()
    xf = x.astype(np.float32) / np.float32(255.0)
    clf = MLPClassifier(hidden_layer_sizes=sizes[1:-1], activation="relu", solver="sgd",
                        batch_size=batch, learning_rate_init=LR, momentum=0.0,
                        nesterovs_momentum=False, alpha=0.0, shuffle=True, random_state=0)
    classes = np.arange(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds = common.repeat_timed(lambda: clf.partial_fit(xf, y, classes=classes),
                                      warmup=warmup, repeats=epochs)
    return {"side": "sklearn", "epoch_s": common.median(seconds), "epochs_s": seconds,
            "train_accuracy_last": float(clf.score(xf[:10000], y[:10000])),
            "coef_dtype": str(clf.coefs_[0].dtype), "blas": common.blas_threads()}


def worker_main(argv: list[str]) -> None:
    parser = common.base_parser("bench_epoch worker")
    parser.add_argument("--worker", required=True, choices=["digitnet", "torch", "sklearn"])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    common.pin_threads(args.threads)
    sizes = tuple(int(s) for s in args.arch.split("-"))
    if args.worker == "digitnet":
        result = worker_digitnet(sizes, args.batch, args.warmup, args.epochs)
    elif args.worker == "torch":
        result = worker_torch(sizes, args.batch, args.warmup, args.epochs, args.threads)
    else:
        result = worker_sklearn(sizes, args.batch, args.warmup, args.epochs)
    common.emit(result)


# -- the benchmark -----------------------------------------------------------------------------
def run(threads: int = common.DEFAULT_THREADS, quick: bool = False, log: Any = print) -> dict[str, Any]:
    """Run every case on every side; returns the JSON-able results.

    The sides take turns in ``rounds`` rounds (digitnet, torch, sklearn, digitnet, ...), each
    a fresh worker, and each side's figure is the median of its timed epochs from all
    rounds: a slow drift in the machine's load then falls on every side alike."""
    rounds, epochs, sk_epochs = (1, 2, 1) if quick else (2, 3, 2)
    rows = []
    for sizes, batch in CASES:
        arch = "-".join(map(str, sizes))
        base = ["--worker", "", "--arch", arch, "--batch", str(batch), "--warmup", "1"]
        res: dict[str, Any] = {"arch": arch, "batch": batch, "rounds": rounds,
                               "flops": epoch_flops(sizes, 60000)}
        for r in range(rounds):
            for side, n_ep in (("digitnet", epochs), ("torch", epochs), ("sklearn", sk_epochs)):
                base[1] = side
                log(f"  epoch {arch} batch {batch}: {side} (round {r + 1}/{rounds}) ...", flush=True)
                res.setdefault(f"{side}_rounds", []).append(
                    common.run_worker(MODULE, [*base, "--epochs", str(n_ep)], threads))
        for side in ("digitnet", "torch", "sklearn"):
            res[side] = _pool(res.pop(f"{side}_rounds"))
        d, t, s = (res[k]["epoch_s"] for k in ("digitnet", "torch", "sklearn"))
        res["ratio_vs_torch"] = d / t
        res["torch_target"] = TORCH_TARGETS.get((sizes, batch))
        res["speedup_vs_sklearn"] = s / d
        # the most any implementation doing the same products could reach against sklearn
        res["sklearn_speedup_bound"] = s / res["digitnet"]["matmul_only_s"]
        res["floor_ratio"] = d / res["digitnet"]["matmul_only_s"]
        peak = res["digitnet"]["sgemm_peak_gflops"]
        res["flop_floor_s"] = res["flops"] / (peak * 1e9)
        res["flop_floor_share"] = res["flop_floor_s"] / d
        res["floor_target"] = FLOOR_TARGET if (sizes, batch) in FLOOR_CASES else None
        res["met"] = {
            "vs_torch": None if res["torch_target"] is None else res["ratio_vs_torch"] <= res["torch_target"],
            "vs_sklearn": res["speedup_vs_sklearn"] >= SKLEARN_SPEEDUP_TARGET,
            "vs_matmul_only": None if res["floor_target"] is None else res["floor_ratio"] <= FLOOR_TARGET,
        }
        rows.append(res)
    return {"benchmark": "epoch", "threads": threads, "quick": quick, "rounds": rounds,
            "epochs_timed_per_round": epochs, "sklearn_epochs_timed_per_round": sk_epochs, "cases": rows}


def _pool(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's results from several rounds: medians over all timed epochs (and the mean
    phase profile); the last round's other fields."""
    pooled = dict(rounds[-1])
    pooled["epochs_s"] = [t for r in rounds for t in r["epochs_s"]]
    pooled["epoch_s"] = common.median(pooled["epochs_s"])
    if "matmul_only_all_s" in pooled:
        pooled["matmul_only_all_s"] = [t for r in rounds for t in r["matmul_only_all_s"]]
        pooled["matmul_only_s"] = common.median(pooled["matmul_only_all_s"])
        pooled["sgemm_peak_gflops"] = max(r["sgemm_peak_gflops"] for r in rounds)
        pooled["phases_s"] = {k: sum(r["phases_s"][k] for r in rounds) / len(rounds)
                              for k in pooled["phases_s"]}
    return pooled


def render(result: dict[str, Any]) -> str:
    """Markdown: one row per case."""
    headers = ["arch", "batch", "digitnet s", "torch s", "ratio (target)", "sklearn s",
               "sklearn/digitnet (≥1.7)", "matmul-only s", "epoch/matmul (target)",
               "FLOP-floor share"]
    rows = []
    for r in result["cases"]:
        tt = r["torch_target"]
        ft = r["floor_target"]
        rows.append([
            r["arch"], r["batch"], r["digitnet"]["epoch_s"], r["torch"]["epoch_s"],
            f"{r['ratio_vs_torch']:.2f}" + (f" (≤{tt}) {_mark(r['met']['vs_torch'])}" if tt else ""),
            r["sklearn"]["epoch_s"],
            f"{r['speedup_vs_sklearn']:.2f}× {_mark(r['met']['vs_sklearn'])}"
            + (f" (floor allows {r['sklearn_speedup_bound']:.2f}×)"
               if r["sklearn_speedup_bound"] < SKLEARN_SPEEDUP_TARGET else ""),
            r["digitnet"]["matmul_only_s"],
            f"{r['floor_ratio']:.2f}" + (f" (≤{ft}) {_mark(r['met']['vs_matmul_only'])}" if ft else ""),
            f"{100 * r['flop_floor_share']:.0f}% of {r['digitnet']['sgemm_peak_gflops']:.0f} GFLOP/s",
        ])
    return common.table(headers, rows)


def render_phases(result: dict[str, Any]) -> str:
    """Markdown: where each case's digitnet epoch goes (ms per epoch), next to its floor."""
    cases = result["cases"]
    headers = ["phase (ms per epoch)"] + [f"{r['arch']} b{r['batch']}" for r in cases]
    rows = [[phase] + [1e3 * r["digitnet"]["phases_s"][phase] for r in cases] for phase in PHASES]
    rows.append(["sum of phases"] + [1e3 * sum(r["digitnet"]["phases_s"].values()) for r in cases])
    rows.append(["matmul-only (same products)"] + [1e3 * r["digitnet"]["matmul_only_s"] for r in cases])
    return common.table(headers, rows)


def explain_misses(result: dict[str, Any]) -> str:
    """Markdown: for every missed target, where the time goes by the phase profile and why."""
    out = []
    for r in result["cases"]:
        missed = [k for k, ok in r["met"].items() if ok is False]
        if not missed:
            continue
        ph = {k: 1e3 * v for k, v in r["digitnet"]["phases_s"].items()}
        products = ph["Linear forward"] + ph["Linear backward"]
        rest = {"data": ph["data: gather + scale"], "loss + accuracy": ph["loss + accuracy"],
                "activations": ph["activation forward"] + ph["activation backward"],
                "optimizer": ph["optimizer"], "bias and Linear bookkeeping":
                max(products - 1e3 * r["digitnet"]["matmul_only_s"], 0.0)}
        top = ", ".join(f"{name} {ms:.0f}" for name, ms in sorted(rest.items(), key=lambda kv: -kv[1]))
        line = (f"- **{r['arch']} b{r['batch']}** (missed: {', '.join(missed)}): of "
                f"{1e3 * r['digitnet']['epoch_s']:.0f} ms per epoch, the matrix products alone take "
                f"{1e3 * r['digitnet']['matmul_only_s']:.0f} ms; the rest is single-threaded NumPy "
                f"elementwise work ({top} ms).")
        if "vs_sklearn" in missed:
            line += (f" scikit-learn's epoch is {r['sklearn_speedup_bound']:.2f}× the matmul-only time, so "
                     f"no implementation doing the same products could be {SKLEARN_SPEEDUP_TARGET}× faster "
                     "than it here." if r["sklearn_speedup_bound"] < SKLEARN_SPEEDUP_TARGET else
                     f" scikit-learn's epoch is {r['sklearn_speedup_bound']:.2f}× the matmul-only time.")
        out.append(line)
    if not out:
        return "Every epoch target is met."
    return "\n".join([
        "Why the missed epoch targets are missed. BLAS runs the matrix products on every thread, "
        "but NumPy's elementwise functions (gather and scale, bias add, ReLU and its mask, the "
        "softmax, the optimiser's update) run on one, where PyTorch's kernels use all of them; "
        "at these sizes those passes are memory-bound, and 2-thread timings on this machine swing "
        "by 15-30% between runs (compare the matmul-only column across runs in results.json).", "",
        *out])


def _mark(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def main(argv: list[str] | None = None) -> None:
    common.bench_main(argv, __doc__, worker_main, lambda args: run(args.threads, args.quick),
                      lambda result: f"{render(result)}\n\n{render_phases(result)}\n\n"
                                     f"{explain_misses(result)}")


if __name__ == "__main__":
    main()
