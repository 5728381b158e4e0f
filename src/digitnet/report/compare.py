"""``compare``: several runs side by side, as a table and one figure of validation curves.

An unfinished run (``RUN.partial``) is skipped with a note instead of stopping the
comparison, so ``digitnet compare runs/*`` works while a run is training or after one was
killed; a malformed run directory is an error naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import plots
from ..nn import LAYERS
from ..robustness import mean_accuracy
from ..runs import Run, RunError, is_incomplete, load_run, read_json_object
from .figures import ReportError
from .page import at_best

COMPARE_COLUMNS = ("run", "hidden", "activation", "optimizer", "lr", "epochs", "best epoch",
                   "val acc at best", "final val acc", "test acc", "robust acc", "train s")


@dataclass
class Comparison:
    """What :func:`compare_runs` made: one row per run, the figure, and the runs it skipped."""

    rows: list[dict[str, Any]]
    figure: Path
    notes: list[str] = field(default_factory=list)
    robustness_figure: Path | None = None


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _network(model: Mapping[str, Any]) -> tuple[list[int | str] | None, str | None]:
    """Hidden sizes and activation from a spec's ``[model]`` table (either form). A convolution
    counts as ``"c<maps>"``: ``["c32", "c32", "c64", "c64", 128]`` for the cnn recipe."""
    layers = model.get("layers")
    if isinstance(layers, list):
        entries = [e for e in layers if isinstance(e, Mapping) and isinstance(e.get("type"), str)
                   and e["type"] in LAYERS]
        sized = [i for i, e in enumerate(entries) if "out_features" in LAYERS.options(e["type"])]
        hidden: list[int | str] = []
        for i, e in enumerate(entries):
            if "out_channels" in e:
                hidden.append(f"c{e['out_channels']}")
            elif i in sized[:-1]:
                hidden.append(e.get("out_features"))
        acts = [e["type"] for e in entries if LAYERS.get(e["type"]).activation]
        return hidden, acts[0] if acts else None
    hidden = model.get("hidden", [256])
    return (list(hidden) if isinstance(hidden, list) else None), model.get("activation", "relu")


def compare_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row of settings and final metrics per run, as JSON-able values (None: unknown).

    Keys: :data:`COMPARE_COLUMNS` (``"hidden"`` is a list of sizes, accuracies are fractions,
    ``"train s"`` seconds). The best epoch is the one the run's ``monitor`` chose.
    """
    rows = []
    for run in runs:
        model = run.config.get("model") if isinstance(run.config.get("model"), Mapping) else {}
        training = run.config.get("training") if isinstance(run.config.get("training"), Mapping) else {}
        hidden, activation = _network(model)
        m, h, measured = run.metrics, run.metrics["history"], robustness_of(run)
        finite = [v for v in h["val_accuracy"] if math.isfinite(v)]
        rows.append({
            "run": run.name,
            "hidden": hidden,
            "activation": activation,
            "optimizer": training.get("optimizer", "adam"),
            "lr": _number(training.get("lr", 0.002)),
            "epochs": m["epochs"],
            "best epoch": h.get("best_epoch"),
            "val acc at best": _number(at_best(h, "val_accuracy")),
            "final val acc": float(finite[-1]) if finite else None,
            "test acc": _number(m["test_accuracy"]),
            "robust acc": None if measured is None else _number(mean_accuracy(measured)),
            "train s": _number(m.get("train_seconds")),
        })
    return rows


def robustness_of(run: Run) -> dict[str, Any] | None:
    """The run's ``robustness.json`` (from ``evaluate --robustness`` or ``report``), if any."""
    path = run.path / "robustness.json"
    if not path.is_file():
        return None
    try:
        results = read_json_object(path)
    except RunError:
        return None
    return results if isinstance(results.get("perturbations"), dict) else None


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if column == "hidden" and isinstance(value, list):
        return "-".join(str(v) for v in value) if value else "none"
    if column.endswith("acc") or column == "val acc at best":
        return f"{value:.4f}"
    if column == "lr":
        return f"{value:g}"
    if column == "train s":
        return f"{value:.1f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COMPARE_COLUMNS) -> str:
    """A plain-text table with aligned columns of :func:`compare_rows`."""
    cells = [[_cell(col, r.get(col)) for col in columns] for r in rows]
    widths = [max(len(col), *(len(row[i]) for row in cells)) for i, col in enumerate(columns)]
    out = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in out)


def compare_output_path(out: str | Path | None) -> Path:
    """Where ``compare`` writes its figure: ``out`` if it names a .png file, else
    ``out/compare.png`` (``out`` a directory; default the current directory)."""
    if out is None:
        return Path.cwd() / "compare.png"
    out = Path(out)
    return out if out.suffix.lower() == ".png" else out / "compare.png"


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Comparison:
    """Overlay the validation curves of the finished runs among ``run_dirs`` into one PNG."""
    if not run_dirs:
        raise ReportError("give at least one run directory to compare")
    runs, notes = [], []
    for d in run_dirs:
        if is_incomplete(d):
            notes.append(f"skipped {d}: an unfinished run (resume it with `digitnet train --resume "
                         f"{str(d).removesuffix('.partial')}`)")
            continue
        runs.append(load_run(d, model=False))
    if not runs:
        raise ReportError("none of the directories is a finished run: " + "; ".join(notes))
    labels = [r.name for r in runs]
    if len(set(labels)) != len(labels):  # same directory names under different parents
        labels = [str(r.path) for r in runs]
    rows = compare_rows(runs)
    for row, label in zip(rows, labels, strict=True):
        row["run"] = label
    path = compare_output_path(out)
    curves = [(label, r.metrics["history"]) for label, r in zip(labels, runs, strict=True)]
    title = f"Validation curves of {len(runs)} run{'s' * (len(runs) > 1)}"
    plots.plot_validation_curves(curves, path, title=title)
    measured = [(label, robustness_of(r)) for label, r in zip(labels, runs, strict=True)]
    measured = [(label, res) for label, res in measured if res is not None]
    robust_path = None
    if measured:
        robust_path = path.with_name(f"{path.stem}-robustness.png")
        plots.plot_robustness(measured, robust_path, title="Accuracy under perturbations, run by run")
    missing = [label for label, r in zip(labels, runs, strict=True) if robustness_of(r) is None]
    if measured and missing:
        notes.append(f"no robustness measured for {', '.join(missing)} (digitnet evaluate RUN --robustness)")
    return Comparison(rows, path, notes, robust_path)
