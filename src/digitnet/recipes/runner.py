"""Recipes: run specs in TOML files, the seed experiments among them, and the runner that
compares a seed's recipe with what the seed reported.

A recipe file is a run spec (``[data]``, ``[model]``, ``[training]``; see
:mod:`digitnet.spec`) with a ``name``, ``title`` and ``notes``. A seed experiment adds
``[seed]`` (what the seed reports, on which split, the accepted range, its seconds) and
``[improved]``, whose sub-tables override settings for the fixed variant. Nothing here is
specific to one seed: the quirks are named components (:mod:`digitnet.quirks`) the files
choose, and every variant runs through :func:`digitnet.experiment.run_training`, so each
run is an ordinary run directory.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..classifier import Classifier, evaluate_split
from ..data.catalog import RawData, read_format
from ..errors import SpecError
from ..experiment import RunResult, run_training
from ..prepare import PreparedData, prepare
from ..runs import new_run_dir
from ..spec import DataSpec, ModelSpec, RunSpec, TrainingSpec
from ..train import History

__all__ = ["Recipe", "Result", "load_recipe", "recipe_names", "run_recipe", "times"]

Log = Callable[[str], None]
VARIANTS = ("faithful", "improved")
#: ``(table, component setting) -> its option settings``: when ``[improved]`` names another
#: loss, optimiser, schedule or normalisation, the faithful one's options do not carry over.
_COMPONENT_OPTIONS: dict[tuple[str, str], list[str]] = {}
for _table, _cls in (("data", DataSpec), ("training", TrainingSpec)):
    for _f in dataclasses.fields(_cls):
        if _f.metadata["group"]:
            _COMPONENT_OPTIONS.setdefault((_table, _f.metadata["group"]), []).append(_f.name)
_MLP_KEYS = [f.name for f in dataclasses.fields(ModelSpec) if f.name not in ("layers", "dtype")]


def merge_improved(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """The improved variant's tables: ``base`` with ``over``'s settings, where naming another
    loss, optimiser or schedule drops the faithful one's options, and giving ``layers``
    (or the MLP settings) replaces the other way of describing the network."""
    out = copy.deepcopy({k: base.get(k, {}) for k in ("data", "model", "training")})
    for table, values in over.items():
        if table not in out or not isinstance(values, dict):
            continue
        target = out[table]
        for (where, component), options in _COMPONENT_OPTIONS.items():
            if where == table and component in values and values[component] != target.get(component):
                for option in options:
                    target.pop(option, None)
        if table == "model":
            if "layers" in values:
                for key in _MLP_KEYS:
                    target.pop(key, None)
            elif any(key in values for key in _MLP_KEYS):
                target.pop("layers", None)
        target.update(copy.deepcopy(values))
    return out


@dataclass
class Recipe:
    """A parsed recipe: its spec (the faithful variant, for a seed), and for a seed
    experiment its ``[seed]`` facts and the improved variant."""

    name: str
    title: str
    notes: str
    faithful: RunSpec
    seed: dict[str, Any] | None = None
    improved: RunSpec | None = None
    improved_notes: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "<recipe>") -> Recipe:
        if "name" not in d or not isinstance(d["name"], str):
            raise SpecError(f"{origin}: a recipe needs a name")
        faithful = RunSpec.from_dict(d, origin)
        seed, improved, improved_notes = d.get("seed"), None, ""
        if seed is not None:
            if not isinstance(seed, dict) or seed.get("metric") not in ("valid", "test") \
                    or not isinstance(seed.get("reported"), (int, float)):
                raise SpecError(f"{origin}: [seed] needs metric = 'valid' or 'test' and a reported figure")
            over = d.get("improved", {})
            if not isinstance(over, dict):
                raise SpecError(f"{origin}: [improved] must be a table")
            improved = RunSpec.from_dict(merge_improved(d, over), f"{origin} [improved]")
            improved_notes = str(over.get("notes", ""))
        return cls(d["name"], str(d.get("title", "")), str(d.get("notes", "")), faithful, seed, improved,
                   improved_notes)

    @property
    def is_seed(self) -> bool:
        return self.seed is not None

    def variant(self, name: str) -> RunSpec:
        if name not in VARIANTS:
            raise SpecError(f"variant must be one of {', '.join(VARIANTS)}, got {name!r}")
        if name == "improved":
            if self.improved is None:
                raise SpecError(f"recipe {self.name} has no improved variant (it is not a seed experiment)")
            return self.improved
        return self.faithful

    def variant_notes(self, name: str) -> str:
        return self.improved_notes if name == "improved" else self.notes

    @property
    def accept(self) -> tuple[float, float]:
        """The range a faithful run must land in (default: the reported figure ± 1 pp)."""
        assert self.seed is not None
        if "accept" in self.seed:
            lo, hi = self.seed["accept"]
            return float(lo), float(hi)
        r = float(self.seed["reported"])
        return r - 0.01, min(1.0, r + 0.01)


def recipe_names() -> list[str]:
    """Names of the built-in recipes (the ``*.toml`` files shipped in this package)."""
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name (``"seed-000"``) or a recipe file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        names = recipe_names()
        if str(name_or_path) not in names:
            raise SpecError(f"unknown recipe {str(name_or_path)!r}; built-in recipes: {', '.join(names)}"
                            " (or give a .toml file)")
        text = (resources.files(__package__) / f"{name_or_path}.toml").read_text(encoding="utf-8")
        origin = f"{name_or_path}.toml"
    try:
        return Recipe.from_dict(tomllib.loads(text), origin)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{origin}: not valid TOML ({exc})") from None


@dataclass
class Result:
    """One recipe run, how it compares with its seed, and where its run directory is."""

    recipe: str
    variant: str
    metric: str
    reported: float | None
    accuracy: float
    accept: tuple[float, float]
    seconds: float
    epochs: int
    note: str
    run_dir: Path | None = None
    seed_seconds: float | None = None
    target_epoch: int | None = None
    target_seconds: float | None = None

    @property
    def ok(self) -> bool:
        """Faithful: inside the accepted range. Improved: beats the seed's figure."""
        if self.reported is None:
            return True
        if self.variant == "improved":
            return self.accuracy > self.reported
        return self.accept[0] <= self.accuracy <= self.accept[1]

    def faster(self, baseline: float | None) -> float | None:
        if self.target_seconds is None or not baseline:
            return None
        return baseline / max(self.target_seconds, 1e-9)

    def line(self, faithful_seconds: float | None = None) -> str:
        seed = "n/a" if self.reported is None else f"{self.reported:.2%}"
        text = (f"{self.recipe:<15} {self.variant:<9} seed {self.metric} {seed:>7} "
                f"| ours {self.accuracy:.2%} | {self.seconds:.1f} s")
        if self.variant == "faithful" and self.reported is not None:
            lo, hi = self.accept
            text += f" | {'in range' if self.ok else 'OUT OF RANGE'} {lo:.2%}-{hi:.2%}"
        elif self.reported is not None:
            text += " | beats seed" if self.ok else " | DOES NOT BEAT SEED"
            text += " | " + self.speedup_text(faithful_seconds)
        return text

    def speedup_text(self, faithful_seconds: float | None = None) -> str:
        if self.target_seconds is None:
            return "never reached the seed figure"
        text = f"reached {self.reported:.2%} after {self.target_epoch} epoch(s), {self.target_seconds:.1f} s"
        parts = []
        if self.seed_seconds:
            parts.append(f"{times(self.faster(self.seed_seconds))} than the seed's code "
                         f"({self.seed_seconds:g} s)")
        if faithful_seconds:
            parts.append(f"{times(self.faster(faithful_seconds))} than the faithful run "
                         f"({faithful_seconds:.1f} s)")
        return text + (": " + "; ".join(parts) if parts else "")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["run_dir"] = None if self.run_dir is None else str(self.run_dir)
        d["accept"], d["ok"] = list(self.accept), self.ok
        return d


def times(ratio: float | None) -> str:
    """``12.3`` -> ``"12x faster"``, ``1.46`` -> ``"1.5x faster"``, ``0.5`` -> ``"2.0x slower"``."""
    if ratio is None:
        return ""
    if ratio >= 10:
        return f"{ratio:.0f}x faster"
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def _split_accuracy(clf: Classifier, data: PreparedData, split: str) -> float:
    x, y = (data.x_valid, data.y_valid) if split == "valid" else (data.x_test, data.y_test)
    if len(x) == 0:
        return float("nan")
    scale = data.eval_scale
    return float(np.mean(evaluate_split(clf, x, y, scale) == y))


def run_recipe(recipe: Recipe | str, variant: str = "faithful", *, out: str | Path | None = None,
               overwrite: bool = False, data_dir: str | Path | None = None, fetch: bool = True,
               digits: list[int] | None = None, seed: int | None = None, epochs: int | None = None,
               log: Log = print, raw_cache: dict[str, RawData] | None = None) -> tuple[Result, RunResult]:
    """Train one variant of a seed recipe into a run directory and compare with the seed.

    ``digits`` trains on other digits than the recipe's (the seed figure then does not
    apply); ``seed`` and ``epochs`` override the recipe's; ``raw_cache`` lets several runs
    share the files they read (keyed by format).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if not recipe.is_seed:
        raise SpecError(f"{recipe.name} is not a seed experiment; train it with `digitnet train --recipe "
                        f"{recipe.name}`")
    assert recipe.seed is not None
    spec = recipe.variant(variant)
    changes = {k: v for k, v in (("digits", tuple(digits) if digits else None), ("seed", seed),
                                 ("epochs", epochs)) if v is not None}
    spec = spec.replace(**changes) if changes else spec
    metric = recipe.seed["metric"]
    same_task = digits is None or sorted(digits) == sorted(recipe.faithful.data.digits or range(10))
    reported = float(recipe.seed["reported"]) if same_task else None

    fmt = spec.data.format
    if raw_cache is not None and fmt in raw_cache:
        raw = raw_cache[fmt]
    else:
        raw = read_format(fmt, data_dir, fetch=fetch, log=log)
        if raw_cache is not None:
            raw_cache[fmt] = raw
    data = prepare(spec.data, raw.parts, seed=spec.training.seed,
                   source={**raw.source, "note": raw.note, "data_dir": str(data_dir) if data_dir else None})
    log(f"{recipe.name} ({variant}): data: {raw.note}")

    # improved runs measure the seed's split every epoch, to time when they pass the seed
    watch = variant == "improved" and reported is not None
    n_epochs = spec.training.epochs
    every = max(1, n_epochs // 10)
    seen: list[float] = []

    def report(epoch: int, h: History, clf: Classifier) -> None:
        if watch:
            seen.append(_split_accuracy(clf, data, metric))
        if epoch % every == 0 or epoch == n_epochs:
            extra = f" {metric} acc {seen[-1]:.4f}" if watch else ""
            log(f"  epoch {epoch}/{n_epochs}: loss {h.loss[-1]:.4f} "
                f"train acc {h.train_accuracy[-1]:.4f}{extra}")

    def comparison(clf: Classifier, d: PreparedData, h: History) -> dict[str, Any]:
        accuracy = _split_accuracy(clf, d, metric)
        result = Result(recipe.name, variant, metric, reported, accuracy, recipe.accept, h.train_seconds,
                        len(h.epoch), raw.note, seed_seconds=recipe.seed.get("seconds"))
        if watch:
            elapsed = np.cumsum(h.seconds)
            for i, acc in enumerate(seen):
                if acc >= reported:
                    result.target_epoch, result.target_seconds = i + 1, float(elapsed[i])
                    break
        results.append(result)
        return {"recipe": {"name": recipe.name, "variant": variant, **result.to_dict()}}

    results: list[Result] = []
    dest = Path(out) if out is not None else new_run_dir(label=f"{recipe.name}-{variant}")
    run = run_training(spec, out=dest, overwrite=overwrite, data=data, progress=False, log=lambda _: None,
                       on_epoch_end=report, extra_metrics=comparison)
    result = results[0]
    result.run_dir = run.run_dir
    log(f"{recipe.name} ({variant}): {metric} accuracy {result.accuracy:.4f}; run directory {run.run_dir}")
    return result, run
