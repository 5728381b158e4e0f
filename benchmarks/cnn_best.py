"""The long accuracy runs of issue 14: the ``cnn`` recipe on three seeds.

    DIGITNET_DATA=/path/to/mnist .venv/bin/python -m benchmarks.cnn_best [--seeds 0,1,2] \\
        [--out runs/cnn] [--table benchmarks/CNN_BEST.md] [--reuse]

Each seed is an ordinary ``digitnet train --recipe cnn --seed S`` in its own process, pinned
to two threads (about ten minutes each on the 2-core development machine), in
``OUT/seed-S``; with ``--reuse`` a seed whose run directory is already complete is read
instead of trained again. The table (test accuracy and training seconds per seed, with the
load average) is written to ``--table``. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.mlp_best import train

TARGET_MEAN, TARGET_WORST, TARGET_SECONDS = 0.995, 0.994, 600.0


def finished(run: Path) -> dict[str, Any] | None:
    """The figures of a complete run directory (None if there is none)."""
    path = run / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    return {"run": str(run), "test_accuracy": metrics["test_accuracy"],
            "train_seconds": metrics["train_seconds"], "epochs": metrics["epochs"],
            "load_before": None, "load_after": os.getloadavg()[0]}


def render(result: dict[str, Any]) -> str:
    seeds = result["seeds"]
    accs = [s["test_accuracy"] for s in seeds]
    mean = sum(accs) / len(accs)

    def load(s: dict[str, Any]) -> str:
        before = "n/a" if s["load_before"] is None else f"{s['load_before']:.2f}"
        return f"{before}, {s['load_after']:.2f}"

    lines = [
        "# The small CNN (`digitnet train --recipe cnn`)",
        "",
        f"Written by `python -m benchmarks.cnn_best` on {result['date']} ({result['machine']}, "
        f"{result['threads']} threads).",
        "",
        "| seed | test accuracy | train seconds | epochs | load average (before, after) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| {s['seed']} | {s['test_accuracy']:.4f} | {s['train_seconds']:.0f} | {s['epochs']} "
              f"| {load(s)} |" for s in seeds]
    ok_time = all(s["train_seconds"] <= TARGET_SECONDS for s in seeds)
    lines += [
        "",
        f"Mean {mean:.4f} (target ≥ {TARGET_MEAN}: {'met' if mean >= TARGET_MEAN else 'MISSED'}); "
        f"worst {min(accs):.4f} (target ≥ {TARGET_WORST}: "
        f"{'met' if min(accs) >= TARGET_WORST else 'MISSED'}); "
        f"every run within {TARGET_SECONDS:.0f} s of training: {'met' if ok_time else 'MISSED'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs/cnn")
    parser.add_argument("--table", default=str(common.ROOT / "benchmarks" / "CNN_BEST.md"))
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS)
    parser.add_argument("--reuse", action="store_true", help="read seeds whose runs are complete")
    args = parser.parse_args()
    out, started = Path(args.out), time.perf_counter()
    seeds = []
    for seed in (int(s) for s in args.seeds.split(",")):
        run = out / f"seed-{seed}"
        figures = finished(run) if args.reuse else None
        if figures is None:
            figures = train(run, args.threads, "--recipe", "cnn", "--seed", str(seed))
        seeds.append({"seed": seed, **figures})
        print(json.dumps(seeds[-1]), flush=True)
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": common.environment(args.threads).get("cpu", "?"), "threads": args.threads,
              "seeds": seeds, "minutes": (time.perf_counter() - started) / 60}
    text = render(result)
    Path(args.table).write_text(text, encoding="utf-8")
    Path(args.table).with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
