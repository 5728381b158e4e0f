"""Run every benchmark and regenerate ``benchmarks/RESULTS.md`` and ``benchmarks/results.json``.

    DIGITNET_DATA=/path/to/mnist .venv/bin/python -m benchmarks.run_all [--threads 2] [--quick]

Run it from the repository root on an otherwise idle machine: every figure is a
wall-clock time and other processes on the same cores distort them (two-thread BLAS
timing in particular). Each side of each comparison runs in its own fresh worker process
pinned to ``--threads`` threads (see ``benchmarks/common.py``). The whole suite takes
about 4 minutes on an idle 2-core machine without the convolutional networks' benchmark,
which adds about 15 (``--quick``: about 2 and 2); under load, much longer. ``--only cnn``
measures that one alone (its figures are printed, not written to RESULTS.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make "benchmarks" importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (  # noqa: E402
    bench_cnn,
    bench_epoch,
    bench_inference,
    bench_memory,
    bench_time_to_accuracy,
    common,
)

HERE = Path(__file__).resolve().parent
SUITE = [("epoch", bench_epoch), ("time_to_accuracy", bench_time_to_accuracy),
         ("inference", bench_inference), ("memory", bench_memory), ("cnn", bench_cnn)]


def environment_in_worker(threads: int) -> dict[str, Any]:
    """The conditions (versions, CPU, thread variables) as a pinned worker sees them."""
    import subprocess

    code = ("import json; from benchmarks import common; "
            f"print(json.dumps(common.environment({threads})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=common.ROOT, env=common.thread_env(threads),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, met?) for every target of issue 7."""
    rows: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "MISSED")

    failed = [key for key, _ in SUITE if "error" in results.get(key, {"error": "not run"})]
    for key in failed:
        rows.append((f"benchmark `{key}`", f"did not run: {results.get(key, {}).get('error', 'not run')}",
                     "–"))
    for case in ([] if "epoch" in failed else results["epoch"]["cases"]):
        name = f"{case['arch']} b{case['batch']}"
        if case["torch_target"] is not None:
            rows.append((f"epoch ≤ {case['torch_target']}× torch, {name}",
                         f"{case['ratio_vs_torch']:.2f}×", verdict(case["met"]["vs_torch"])))
        bound = case["sklearn_speedup_bound"]
        unreachable = bound < bench_epoch.SKLEARN_SPEEDUP_TARGET
        rows.append((f"≥ 1.7× faster than sklearn MLPClassifier, {name}",
                     f"{case['speedup_vs_sklearn']:.2f}×"
                     + (f" (sklearn / matmul-only = {bound:.2f}×: no implementation of the same "
                        "products can reach 1.7×)" if unreachable else ""),
                     verdict(case["met"]["vs_sklearn"])))
        if case["floor_target"] is not None:
            rows.append((f"epoch ≤ 1.5× matmul-only, {name}", f"{case['floor_ratio']:.2f}×",
                         verdict(case["met"]["vs_matmul_only"])))
    if "time_to_accuracy" not in failed:
        rows += _tta_rows(results["time_to_accuracy"], verdict)
    if "memory" not in failed:
        mem = results["memory"]
        rows.append(("peak RSS of a full-MNIST training run ≤ 200 MB",
                     f"{mem['digitnet']['peak_rss_mb']:.0f} MB", verdict(mem["met"]["peak_rss"])))
    if "inference" not in failed:
        inf = results["inference"]
        rows.append(("single-image prediction ≤ 100 µs",
                     f"{inf['digitnet']['latency_us_median']:.0f} µs", verdict(inf["met"]["latency"])))
    if "cnn" not in failed:
        rows += _cnn_rows(results["cnn"], verdict)
    return rows


def _cnn_rows(cnn: dict[str, Any], verdict: Any) -> list[tuple[str, str, str]]:
    """Issue 14's targets: epoch time against torch, the FLOP floor, memory."""
    rows = []
    for case in cnn["cases"]:
        rows.append((f"{case['case']} epoch ≤ {case['torch_target']}× torch (issue 14)",
                     f"{case['ratio_vs_torch']:.2f}× ({case['digitnet']['epoch_s']:.1f} s vs "
                     f"{case['torch']['epoch_s']:.1f} s)", verdict(case["met"]["vs_torch"])))
    small = next(c for c in cnn["cases"] if c["case"] == "cnn-wide")
    rows.append(("small CNN: share of its FLOP floor reached (issue 14)",
                 f"{100 * small['flop_floor_share']:.0f}% (floor {small['flop_floor_s']:.0f} s)", "–"))
    mem = cnn["memory"]
    rows.append((f"peak memory of a CNN training run ≤ {mem['target']}× torch's (issue 14)",
                 f"{mem['ratio']:.2f}× ({mem['digitnet']['peak_rss_mb']:.0f} vs "
                 f"{mem['torch']['peak_rss_mb']:.0f} MB)", verdict(mem["met"])))
    return rows


def _tta_rows(tta: dict[str, Any], verdict: Any) -> list[tuple[str, str, str]]:
    rows = []
    d, t = tta["digitnet"]["time_to_target_s"], tta["torch"]["time_to_target_s"]
    rows.append(("default recipe reaches 98.0% test in ≤ 12 s",
                 "not reached" if d is None else f"{d:.1f} s (epoch {tta['digitnet']['epoch_reached']})",
                 verdict(tta["met"]["within_target_seconds"])))
    torch_reach = f"torch {t:.1f} s (epoch {tta['torch']['epoch_reached']})" if t is not None else None
    rows.append(("... and sooner than the same recipe in torch", torch_reach or "torch: not reached",
                 verdict(tta["met"]["sooner_than_torch"])))
    return rows


def render(results: dict[str, Any], note: str = "") -> str:
    env = results["environment"]
    lines = [
        "# digitnet benchmarks",
        "",
        f"Generated by `.venv/bin/python -m benchmarks.run_all{' --quick' if results['quick'] else ''}"
        f" --threads {results['threads']}` on {env['date_utc']} UTC "
        f"in {results['suite_seconds']:.0f} s.",
        "",
        f"Machine: {env['cpu']}, {env['cpus_online']} CPUs online, load average (1 min) "
        f"{env['load_average_1m']} at the start, {results.get('load_average_1m_end', '?')} at the end. "
        f"Python {env['python']}, NumPy {env['numpy']}, "
        f"PyTorch {env['torch']}, scikit-learn {env['sklearn']}.",
        "",
        f"Threads: every side runs in its own fresh process with `OMP_NUM_THREADS`, "
        f"`OPENBLAS_NUM_THREADS` and `MKL_NUM_THREADS` set to {results['threads']} before numpy or torch "
        f"is imported, and torch workers also call `torch.set_num_threads({results['threads']})` "
        "(inter-op threads 1). Timings are wall-clock medians after warm-up.",
    ]
    if note:
        lines += ["", note]
    lines += ["", "## Targets (issues 7 and 14)", "",
              common.table(["target", "measured", "status"], summary(results)), ""]
    sections = [
        ("Training epoch on full MNIST (60,000 images)", bench_epoch,
         "digitnet: `fit` on uint8 images scaled per batch by `Normalizer('unit')`; torch: plain loop "
         "over pre-loaded float32 tensors; sklearn: `MLPClassifier(solver='sgd', momentum=0, alpha=0)`, "
         "one `partial_fit` per epoch, float32. All: ReLU, SGD lr 0.05, reshuffled each epoch. "
         "Sides take turns in fresh worker processes (2 rounds); figures are medians of all timed epochs. "
         "Matmul-only: the same epoch's matrix products alone (same shapes, float32), timed in the "
         "digitnet worker between its training epochs; FLOP-floor share: (epoch FLOPs / measured "
         "sgemm peak) / epoch time."),
        ("Time to 98.0% test accuracy, default recipe", bench_time_to_accuracy,
         "784-256-10 ReLU, Adam lr 0.002, cosine over 10 epochs, batch 128, 55,000 training images. "
         "Time = training-loop seconds up to the end of the first epoch at ≥ 98.0% on the test set, "
         "as (epochs needed) × (median epoch time) (scoring and digitnet's validation pass are not "
         "timed)."),
        ("Inference", bench_inference,
         "From raw uint8 images to labels: digitnet `Classifier.predict`; torch: "
         "`from_numpy(...).float().div_(255)`, `inference_mode`, argmax. 784-256-10."),
        ("Peak memory", bench_memory,
         "Fresh process, `resource.getrusage(RUSAGE_SELF).ru_maxrss`. digitnet: `run_training` "
         "(the `digitnet train` pipeline); torch: same data as float32 tensors, same network."),
        ("Convolutional networks: LeNet-5 and the small CNN", bench_cnn,
         "The `lenet5` and `cnn-wide` recipes' networks (the `cnn` recipe has a sixth of `cnn-wide`'s "
         "FLOPs); torch: the same layers (`torch.nn`). Both: SGD "
         "(lr 0.01, momentum 0.9), batch 128, float32, reshuffled each epoch; seconds per epoch of "
         "60,000 images. Matmul-only: the step's matrix products alone, same shapes; FLOP floor: the "
         "epoch's FLOPs at the measured sgemm peak, and its share of the epoch. Memory: a fresh process "
         "per side trains the small CNN for 100 steps, validates on 5,000 images and scores the test set."),
    ]
    for (title, module, desc), key in zip(sections, [key for key, _ in SUITE], strict=True):
        if "error" in results.get(key, {"error": "not run"}):
            lines += [f"## {title}", "", f"Did not run: {results.get(key, {}).get('error', 'not run')}", ""]
            continue
        lines += [f"## {title}", "", desc, "", module.render(results[key]), ""]
        if key == "epoch":
            lines += ["Where a digitnet epoch goes (the `fit` step with a clock read between phases; "
                      "Linear phases include their matrix products, so compare their sum with the "
                      "matmul-only row):", "", bench_epoch.render_phases(results[key]), "",
                      bench_epoch.explain_misses(results[key]), ""]
    lines += ["Raw figures (every epoch, every worker): `benchmarks/results.json`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"), help="Markdown file to write")
    parser.add_argument("--note", default="", help="a paragraph to add under the conditions")
    parser.add_argument("--only", nargs="*", choices=[k for k, _ in SUITE],
                        help="run only these benchmarks (RESULTS.md needs all of them)")
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="do not measure: rewrite --out from a results.json written before")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    json_path = Path(args.json) if args.json else HERE / "results.json"
    if args.render:
        _write_markdown(args.out, render(json.loads(Path(args.render).read_text()), args.note))
        print(f"wrote {args.out} from {args.render}")
        return
    t0 = time.perf_counter()
    results: dict[str, Any] = {"threads": args.threads, "quick": args.quick,
                               "environment": environment_in_worker(args.threads)}
    for key, module in SUITE:
        if args.only and key not in args.only:
            continue
        print(f"[{time.perf_counter() - t0:6.0f} s] {key}", flush=True)
        try:
            results[key] = module.run(args.threads, args.quick)
        except Exception as exc:  # one failing benchmark must not lose the others' figures
            results[key] = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300]}"}
            print(f"  {key} FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        print(module.render(results[key]), flush=True)
    results["suite_seconds"] = time.perf_counter() - t0
    results["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    if args.only:
        print(json.dumps(results))
        return
    common.write_json(json_path, results)
    markdown = render(results, args.note)
    _write_markdown(args.out, markdown)
    print(f"\n{markdown}\nwrote {args.out} and {json_path} ({results['suite_seconds']:.0f} s)")


def _write_markdown(path: str | Path, markdown: str) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(markdown)
    tmp.replace(path)


if __name__ == "__main__":
    main()
