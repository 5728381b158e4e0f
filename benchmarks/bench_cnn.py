"""Convolutional networks: epoch time of LeNet-5 and the small CNN, digitnet vs PyTorch CPU,
with a phase profile, the FLOP floor and peak memory.

    .venv/bin/python -m benchmarks.bench_cnn [--threads 2] [--quick] [--json FILE]

The networks are the ``lenet5`` and ``cnn-wide`` recipes (``src/digitnet/recipes``), built by
``digitnet.spec.build``; the PyTorch side is the same stack of layers (``torch.nn``, same
shapes, its own initialisation). Both train with SGD (lr 0.01, momentum 0.9) on batches of
128 float32 images scaled to [0, 1], reshuffled every epoch, with the same threads (see
``benchmarks/common.py``); each side in its own fresh worker process, taking turns.

* digitnet: ``digitnet.train.fit`` exactly as ``digitnet train`` runs it (uint8 rows of 784
  pixels, scaled per batch; the network's first layer makes them 1x28x28 images); the epoch
  time is ``History.seconds``. The same worker then times a **phase profile** (the ``fit``
  step layer by layer with a clock read between layers), the **matrix products alone** (every
  product of a training step, same shapes, preallocated outputs, nothing else) and the BLAS
  sgemm peak, which gives the **FLOP floor**: the epoch's FLOPs at that peak.
* torch: a plain loop over pre-loaded float32 tensors (``common.torch_epoch``).
* memory: a fresh process per side trains the small CNN for one epoch on the first 12,800
  images (100 steps; ``--quick``: 10), validates on 5,000 (1,000) and scores the 10,000 test
  images (torch in batches of 1,000, no gradients); the figure is the process's peak
  resident set size, torch's including its float32 copy of the images, as in ``bench_memory``.

A timed epoch is the first ``--images`` training images (default all 60,000; ``--quick``:
6,400), after a warm-up epoch on 1,280; times are reported per 60,000 images.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks import common

MODULE = "benchmarks.bench_cnn"
CASES = ("lenet5", "cnn-wide")
BATCH = 128
LR, MOMENTUM = 0.01, 0.9
FULL = 60_000
TORCH_TARGETS = {"lenet5": 1.0, "cnn-wide": 1.5}  # issue 14: epoch time at most this times torch's
MEMORY_TARGET = 1.5
MEMORY_IMAGES, MEMORY_VALID = 12_800, 5_000
PHASES = ("data: gather + scale", "Conv2D forward", "Conv2D backward", "BatchNorm forward",
          "BatchNorm backward", "activation forward", "activation backward", "pooling forward",
          "pooling backward", "Linear forward", "Linear backward", "other layers", "loss + accuracy",
          "optimizer")


def build_model(case: str) -> Any:
    """The recipe's network (untrained, seed 0) as a ``Sequential`` on rows of 784 pixels."""
    from digitnet.recipes import load_recipe
    from digitnet.spec import build

    return build(load_recipe(case).faithful, 784, 10).model


def kind(layer: Any) -> str:
    """The phase a layer's time counts under."""
    name = type(layer).__name__
    if name in ("Conv2D", "BatchNorm", "Linear"):
        return name
    if name in ("MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"):
        return "pooling"
    return "activation" if layer.activation else "other layers"


# -- FLOPs and the products alone ------------------------------------------------------------------
def products(model: Any, n: int) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` of every matrix product one training step on ``n`` images does, in the
    orientation digitnet computes it: forward, weight gradient, and the input gradient of
    every layer but the first one with weights (col2im's ``W.T @ G`` or, at stride 1 where it
    is the cheaper, the convolution of ``G`` with the turned kernel)."""
    from digitnet.nn import Conv2D, Linear

    shapes = [model.input_shape, *model.shapes()]
    first = next(i for i, layer in enumerate(model.layers) if layer.params)
    out = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Conv2D):
            c, h, w = shapes[i]
            f, ho, wo = shapes[i + 1]
            k = c * layer.kernel_size[0] * layer.kernel_size[1]
            out += [(f, k, n * ho * wo), (k, n * ho * wo, f)]
            if i > first:
                turned = f * layer.kernel_size[0] * layer.kernel_size[1]
                out.append((c, turned, n * h * w) if layer._input_grad_is_a_convolution(h, w)
                           else (k, f, n * ho * wo))
        elif isinstance(layer, Linear):
            a, b = layer.in_features, layer.out_features
            out += [(n, a, b), (a, n, b)] + ([(n, b, a)] if i > first else [])
    return out


def epoch_flops(model: Any, images: int = FULL) -> float:
    steps, last = divmod(images, BATCH)
    per = [sum(2.0 * m * k * nn for m, k, nn in products(model, b)) for b in (BATCH, last) if b]
    return steps * per[0] + (per[1] if last else 0.0)


def matmul_only(model: Any) -> Any:
    """A function timing one step's products alone (random operands, preallocated outputs)."""
    rng = np.random.default_rng(0)
    ops = []
    for m, k, n in products(model, BATCH):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        ops.append((a, b, np.empty((m, n), dtype=np.float32)))

    def step() -> None:
        for a, b, c in ops:
            np.matmul(a, b, out=c)

    return step


# -- workers -------------------------------------------------------------------------------------
def worker_digitnet(case: str, images: int, epochs: int, profile_steps: int) -> dict[str, Any]:
    from digitnet.data.scaling import Normalizer
    from digitnet.nn import SGD, SoftmaxCrossEntropy
    from digitnet.train import fit

    x, y, _, _ = common.load_mnist_arrays()
    norm = Normalizer("unit").fit(x)
    model = build_model(case)
    loss, opt = SoftmaxCrossEntropy(), SGD(LR, momentum=MOMENTUM)
    fit(model, loss, opt, x[:10 * BATCH], y[:10 * BATCH], epochs=1, batch_size=BATCH, preprocess=norm,
        progress=False, seed=0)  # warm-up: first touch of the buffers
    seconds = []
    for epoch in range(epochs):
        history = fit(model, loss, opt, x[:images], y[:images], epochs=1, batch_size=BATCH, preprocess=norm,
                      progress=False, seed=epoch + 1)
        seconds.append(history.seconds[0] * FULL / images)
    phases = phase_profile(model, x, y, norm, profile_steps)
    step = matmul_only(model)
    step()
    floor = [common.timed(step) for _ in range(5)]
    steps_per_epoch = FULL / BATCH
    return {"side": "digitnet", "epoch_s": common.median(seconds), "epochs_s": seconds,
            "train_accuracy_last": history.train_accuracy[-1], "phases_s": phases,
            "matmul_only_s": common.median(floor) * steps_per_epoch, "flops": epoch_flops(model),
            "sgemm_peak_gflops": common.sgemm_peak(), "parameters": model.num_parameters,
            "blas": common.blas_threads()}


def phase_profile(model: Any, x: np.ndarray, y: np.ndarray, norm: Any, steps: int) -> dict[str, float]:
    """Seconds per 60,000-image epoch in each phase of ``fit``'s step (its batch iterator, then
    each layer forward, the loss and accuracy, each layer backward, the update), from ``steps``
    steps with a clock read between phases."""
    from digitnet.nn import SGD, SoftmaxCrossEntropy
    from digitnet.train import _Batches

    loss, opt = SoftmaxCrossEntropy(), SGD(LR, momentum=MOMENTUM)
    params, layers = model.parameters(), model.layers
    first = next(i for i, layer in enumerate(layers) if layer.params)
    kinds = [kind(layer) for layer in layers]
    total = dict.fromkeys(PHASES, 0)
    clock = time.perf_counter_ns
    batches = _Batches(x, y, BATCH, norm, model.dtype)
    model.train()
    it = batches(np.random.default_rng(1).permutation(len(x)))
    for _ in range(steps):
        t = clock()
        xb, yb = next(it)
        t1 = clock()
        total["data: gather + scale"] += t1 - t
        h = xb
        for layer, k in zip(layers, kinds, strict=True):
            t = t1
            h = layer.forward(h)
            t1 = clock()
            total[f"{k} forward" if k != "other layers" else k] += t1 - t
        loss.forward(h, yb)
        np.count_nonzero(loss.predict_labels(h) == yb)
        g = loss.backward()
        t = clock()
        total["loss + accuracy"] += t - t1
        for i in range(len(layers) - 1, first - 1, -1):
            g = layers[i].backward(g, need_input_grad=i > first)
            t1 = clock()
            total[f"{kinds[i]} backward" if kinds[i] != "other layers" else kinds[i]] += t1 - t
            t = t1
        opt.step(params)
        t = clock()
        total["optimizer"] += t - t1
    return {k: v / steps * (FULL / BATCH) / 1e9 for k, v in total.items()}


def torch_model(model: Any, torch: Any) -> Any:
    """The same stack of layers in torch (float32, torch's own initialisation)."""
    from digitnet.nn import AvgPool2D, BatchNorm, Conv2D, Dropout, Flatten, Linear, MaxPool2D, Unflatten

    nn = torch.nn

    class ScaledTanh(nn.Module):
        def __init__(self, a: float, s: float) -> None:
            super().__init__()
            self.a, self.s = a, s

        def forward(self, v: Any) -> Any:
            return self.a * torch.tanh(self.s * v)

    shapes = [model.input_shape, *model.shapes()]
    mods = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Unflatten):
            mods.append(nn.Unflatten(1, layer.shape))
        elif isinstance(layer, Conv2D):
            mods.append(nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                  stride=layer.stride, padding=layer.padding, bias=layer.use_bias))
        elif isinstance(layer, BatchNorm):
            mods.append((nn.BatchNorm2d if len(shapes[i]) == 3 else nn.BatchNorm1d)(layer.num_features))
        elif isinstance(layer, MaxPool2D):
            mods.append(nn.MaxPool2d(layer.kernel_size, stride=layer.stride))
        elif isinstance(layer, AvgPool2D):
            mods.append(nn.AvgPool2d(layer.kernel_size, stride=layer.stride))
        elif isinstance(layer, Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, Dropout):
            mods.append(nn.Dropout(layer.p))
        elif isinstance(layer, Linear):
            mods.append(nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias))
        elif type(layer).__name__ == "ScaledTanh":
            mods.append(ScaledTanh(layer.amplitude, layer.slope))
        else:
            mods.append({"ReLU": nn.ReLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid}[type(layer).__name__]())
    return nn.Sequential(*mods)


def worker_torch(case: str, images: int, epochs: int, threads: int) -> dict[str, Any]:
    torch = common.torch_threads(threads)
    x, y, _, _ = common.load_mnist_arrays()
    xt = torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
    yt = torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch_model(build_model(case), torch)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    model.train()
    common.torch_epoch(model, opt, loss_fn, xt, yt, BATCH, gen, n=10 * BATCH)  # warm-up
    seconds, acc = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        _, correct = common.torch_epoch(model, opt, loss_fn, xt, yt, BATCH, gen, n=images)
        seconds.append((time.perf_counter() - t0) * FULL / images)
        acc.append(correct / images)
    return {"side": "torch", "epoch_s": common.median(seconds), "epochs_s": seconds,
            "train_accuracy_last": acc[-1], "torch_threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in model.parameters()), "blas": common.blas_threads()}


def worker_memory(side: str, case: str, threads: int, images: int, valid: int) -> dict[str, Any]:
    """One epoch on the first ``images`` images, validation on ``valid``, the 10,000 test images
    scored."""
    x, y, x_test, y_test = common.load_mnist_arrays()
    x_valid, y_valid = x[-valid:], y[-valid:]
    if side == "digitnet":
        from digitnet.data.scaling import Normalizer
        from digitnet.nn import SGD, SoftmaxCrossEntropy
        from digitnet.train import fit

        norm = Normalizer("unit").fit(x)
        model = build_model(case)
        fit(model, SoftmaxCrossEntropy(), SGD(LR, momentum=MOMENTUM), x[:images], y[:images], epochs=1,
            batch_size=BATCH, preprocess=norm, validation_data=(x_valid, y_valid), progress=False)
        accuracy = float(np.mean(model.predict(norm.transform(x_test)).argmax(1) == y_test))
    else:
        torch = common.torch_threads(threads)
        xt = torch.from_numpy(x.astype(np.float32) / np.float32(255.0))
        yt = torch.from_numpy(y)
        model = torch_model(build_model(case), torch)
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn = torch.nn.CrossEntropyLoss()
        common.torch_epoch(model, opt, loss_fn, xt, yt, BATCH, torch.Generator(), n=images)
        model.eval()
        scale = np.float32(1 / 255)
        with torch.no_grad():
            for part in (x_valid, x_test):
                out = [model(torch.from_numpy(part[i:i + 1000].astype(np.float32) * scale))
                       for i in range(0, len(part), 1000)]
            accuracy = float((torch.cat(out).argmax(1).numpy() == y_test).mean())
    return {"side": side, "peak_rss_mb": common.peak_rss_mb(), "test_accuracy": accuracy}


def worker_main(argv: list[str]) -> None:
    parser = common.base_parser("bench_cnn worker")
    parser.add_argument("--worker", required=True, choices=["digitnet", "torch", "memory-digitnet",
                                                            "memory-torch"])
    parser.add_argument("--case", required=True, choices=CASES)
    parser.add_argument("--images", type=int, default=FULL)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--profile-steps", type=int, default=30)
    parser.add_argument("--valid", type=int, default=MEMORY_VALID)
    args = parser.parse_args(argv)
    common.pin_threads(args.threads)
    if args.worker == "digitnet":
        result = worker_digitnet(args.case, args.images, args.epochs, args.profile_steps)
    elif args.worker == "torch":
        result = worker_torch(args.case, args.images, args.epochs, args.threads)
    else:
        result = worker_memory(args.worker.split("-")[1], args.case, args.threads, args.images, args.valid)
    common.emit(result)


# -- the benchmark -----------------------------------------------------------------------------------
def run(threads: int = common.DEFAULT_THREADS, quick: bool = False, log: Any = print,
        images: int | None = None) -> dict[str, Any]:
    """Both networks on both sides (digitnet, torch, digitnet, torch: two rounds of fresh
    workers unless ``quick``), then the memory of a small-CNN training run on each side."""
    images = images or (6_400 if quick else FULL)
    rounds, epochs = (1, 1) if quick else (2, 2)
    cases = []
    for case in CASES:
        res: dict[str, Any] = {"case": case, "images_timed": images, "rounds": rounds}
        base = ["--case", case, "--images", str(images), "--epochs", str(epochs),
                "--profile-steps", str(60 if case == "lenet5" else 20)]
        for r in range(rounds):
            for side in ("digitnet", "torch"):
                log(f"  cnn {case}: {side} (round {r + 1}/{rounds}) ...", flush=True)
                res.setdefault(f"{side}_rounds", []).append(
                    common.run_worker(MODULE, ["--worker", side, *base], threads, timeout=3600))
        for side in ("digitnet", "torch"):
            runs = res.pop(f"{side}_rounds")
            res[side] = dict(runs[-1])
            res[side]["epochs_s"] = [t for r in runs for t in r["epochs_s"]]
            res[side]["epoch_s"] = common.median(res[side]["epochs_s"])
        d = res["digitnet"]
        res["ratio_vs_torch"] = d["epoch_s"] / res["torch"]["epoch_s"]
        res["torch_target"] = TORCH_TARGETS[case]
        res["flop_floor_s"] = d["flops"] / (d["sgemm_peak_gflops"] * 1e9)
        res["flop_floor_share"] = res["flop_floor_s"] / d["epoch_s"]
        res["matmul_share"] = d["matmul_only_s"] / d["epoch_s"]
        res["met"] = {"vs_torch": res["ratio_vs_torch"] <= res["torch_target"]}
        cases.append(res)
    mem_images, mem_valid = (10 * BATCH, 1_000) if quick else (MEMORY_IMAGES, MEMORY_VALID)
    memory: dict[str, Any] = {"case": "cnn-wide", "images": mem_images, "valid": mem_valid,
                              "target": MEMORY_TARGET}
    for side in ("digitnet", "torch"):
        log(f"  cnn memory: {side} ...", flush=True)
        memory[side] = common.run_worker(MODULE, ["--worker", f"memory-{side}", "--case", "cnn-wide",
                                                  "--images",
                                                  str(mem_images), "--valid", str(mem_valid)], threads,
                                         timeout=3600)
    memory["ratio"] = memory["digitnet"]["peak_rss_mb"] / memory["torch"]["peak_rss_mb"]
    memory["met"] = memory["ratio"] <= MEMORY_TARGET
    return {"benchmark": "cnn", "threads": threads, "quick": quick, "cases": cases, "memory": memory}


def render(result: dict[str, Any]) -> str:
    """Markdown: epoch times and ratios, where digitnet's epoch goes, and peak memory."""
    headers = ["network", "params", "digitnet s/epoch", "torch s/epoch", "ratio (target)", "matmul-only s",
               "GFLOP/epoch", "FLOP floor s", "FLOP-floor share"]
    rows = []
    for r in result["cases"]:
        d = r["digitnet"]
        ok = "met" if r["met"]["vs_torch"] else "MISSED"
        rows.append([r["case"], f"{d['parameters']:,}", d["epoch_s"], r["torch"]["epoch_s"],
                     f"{r['ratio_vs_torch']:.2f} (≤{r['torch_target']}) {ok}", d["matmul_only_s"],
                     f"{d['flops'] / 1e9:,.0f}", r["flop_floor_s"],
                     f"{100 * r['flop_floor_share']:.0f}% of {d['sgemm_peak_gflops']:.0f} GFLOP/s"])
    out = [common.table(headers, rows), ""]
    if any(r["images_timed"] != FULL for r in result["cases"]):
        out += [f"(Timed on the first {result['cases'][0]['images_timed']:,} images, per 60,000.)", ""]
    headers = ["phase (s per epoch)"] + [r["case"] for r in result["cases"]]
    phase_rows = [[p] + [r["digitnet"]["phases_s"][p] for r in result["cases"]] for p in PHASES]
    digitnet = [r["digitnet"] for r in result["cases"]]
    phase_rows.append(["sum of phases"] + [sum(d["phases_s"].values()) for d in digitnet])
    phase_rows.append(["matmul-only (same products)"] + [d["matmul_only_s"] for d in digitnet])
    out += ["Where a digitnet epoch goes (Conv2D and Linear phases include their matrix products, and "
            "a convolution's column copies):", "", common.table(headers, phase_rows), ""]
    m = result["memory"]
    sides = [[s, m[s]["peak_rss_mb"], f"{m[s]['test_accuracy']:.4f}"] for s in ("digitnet", "torch")]
    steps = m["images"] // BATCH
    out += [common.table(["side", "peak RSS MB", f"test acc after {steps} steps"], sides),
            "", f"Peak memory of a small-CNN training run: {m['ratio']:.2f}× torch's (≤{m['target']}: "
                f"{'met' if m['met'] else 'MISSED'})."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    common.bench_main(
        argv, __doc__, worker_main, lambda args: run(args.threads, args.quick, images=args.images), render,
        lambda parser: parser.add_argument("--images", type=int, default=None,
                                           help="training images per timed epoch (default 60,000; "
                                                "--quick 6,400); times are reported per 60,000"))


if __name__ == "__main__":
    main()
