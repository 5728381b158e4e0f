"""The long accuracy runs of issue 13: the ``mlp-best`` recipe on three seeds, and the
robustness of the augmented model beside the default one.

    DIGITNET_DATA=/path/to/mnist .venv/bin/python -m benchmarks.mlp_best [--seeds 0,1,2] \\
        [--out runs/mlp-best] [--table benchmarks/MLP_BEST.md]

Each seed is an ordinary ``digitnet train --recipe mlp-best --seed S`` in its own process,
pinned to two threads (about ten minutes each on the 2-core development machine). Then the
default recipe is trained, both models are measured with ``digitnet evaluate --robustness``,
and the table (accuracy and training seconds per seed, the load average, and the robustness
of the two models strength by strength) is written to ``--table``. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

TARGET_EACH, TARGET_MEAN, TARGET_SECONDS = 0.993, 0.994, 600.0


def digitnet(*args: str, threads: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "digitnet", *args]
    proc = subprocess.run(
        cmd, cwd=common.ROOT, env=common.thread_env(threads), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return proc


def train(out: Path, threads: int, *args: str) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    digitnet("train", *args, "--out", str(out), "--overwrite", "--no-progress", threads=threads)
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "run": str(out),
        "test_accuracy": metrics["test_accuracy"],
        "train_seconds": metrics["train_seconds"],
        "epochs": metrics["epochs"],
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def robustness(run: Path, threads: int) -> dict[str, Any]:
    digitnet("evaluate", str(run), "--robustness", threads=threads)
    return json.loads((run / "robustness.json").read_text())


def render(result: dict[str, Any]) -> str:
    seeds = result["seeds"]
    accs = [s["test_accuracy"] for s in seeds]
    mean = sum(accs) / len(accs)
    lines = [
        "# The best plain MLP (`digitnet train --recipe mlp-best`)",
        "",
        f"Written by `python -m benchmarks.mlp_best` on {result['date']} ({result['machine']}, "
        f"{result['threads']} threads); {result['minutes']:.0f} minutes in all.",
        "",
        "| seed | test accuracy | train seconds | epochs | load average (before, after) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for s in seeds:
        lines.append(
            f"| {s['seed']} | {s['test_accuracy']:.4f} | {s['train_seconds']:.0f} | {s['epochs']} "
            f"| {s['load_before']:.2f}, {s['load_after']:.2f} |"
        )
    ok_each = all(a >= TARGET_EACH for a in accs)
    ok_time = all(s["train_seconds"] <= TARGET_SECONDS for s in seeds)
    lines += [
        "",
        f"Mean {mean:.4f} (target ≥ {TARGET_MEAN}: {'met' if mean >= TARGET_MEAN else 'MISSED'}); "
        f"worst {min(accs):.4f} (target ≥ {TARGET_EACH}: {'met' if ok_each else 'MISSED'}); every run "
        f"within {TARGET_SECONDS:.0f} s of training: {'met' if ok_time else 'MISSED'}.",
        "",
    ]
    base, aug = result["robustness"]["default"], result["robustness"]["mlp-best"]
    lines += [
        f"## Robustness: the default recipe ({result['default']['test_accuracy']:.4f}) and mlp-best "
        f"(seed {seeds[0]['seed']})",
        "",
        "| perturbation | strength | default | mlp-best | better |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    always = True
    for kind, r in base["perturbations"].items():
        other = aug["perturbations"][kind]
        for i, (s, a) in enumerate(zip(r["strengths"], r["accuracy"], strict=True)):
            b = other["accuracy"][i]
            neutral = s == {"scale": 1.0}.get(kind, 0)
            better = b > a
            always &= better or neutral
            lines.append(
                f"| {kind} | {s:g} | {a:.4f} | {b:.4f} | {'yes' if better else ('—' if neutral else 'NO')} |"
            )
    lines += [
        "",
        f"The augmented model is more accurate at every strength but the neutral one: "
        f"{'yes' if always else 'NO'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs/mlp-best")
    parser.add_argument("--table", default=str(common.ROOT / "benchmarks" / "MLP_BEST.md"))
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS)
    args = parser.parse_args()
    out, started = Path(args.out), time.perf_counter()
    seeds = []
    for seed in (int(s) for s in args.seeds.split(",")):
        result = {
            "seed": seed,
            **train(out / f"seed-{seed}", args.threads, "--recipe", "mlp-best", "--seed", str(seed)),
        }
        print(json.dumps(result), flush=True)
        seeds.append(result)
    default = train(out / "default", args.threads)
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": common.environment(args.threads).get("cpu", "?"),
        "threads": args.threads,
        "seeds": seeds,
        "default": default,
        "robustness": {
            "default": robustness(out / "default", args.threads),
            "mlp-best": robustness(Path(seeds[0]["run"]), args.threads),
        },
        "minutes": (time.perf_counter() - started) / 60,
    }
    text = render(result)
    Path(args.table).write_text(text, encoding="utf-8")
    (Path(args.table).with_suffix(".json")).write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
