"""Turn a recipe into data, a model and a training run, and compare with the seed.

A recipe is a TOML file (see ``seed-000.toml``) with four tables: ``[seed]`` (what the
seed reports, on which split, and the accepted range), ``[data]``, ``[model]`` and
``[training]``, plus an ``[improved]`` table whose sub-tables override those for the
fixed variant. Nothing here is specific to one seed: the quirks are named pieces
(:mod:`digitnet.recipes.quirks`) that the recipe files choose.
"""

from __future__ import annotations

import copy
import json
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..nn.layers import Layer, Linear
from ..nn.model import ACTIVATIONS, Sequential
from ..train import History, fit
from . import quirks
from .data import RecipeData, load_recipe_data

__all__ = ["Recipe", "Result", "load_recipe", "recipe_names", "run_recipe", "build_model"]

Log = Callable[[str], None]
VARIANTS = ("faithful", "improved")
LINEAR_TYPES: dict[str, type[Linear]] = {"Linear": Linear, "ScalarBiasLinear": quirks.ScalarBiasLinear}
ACTIVATION_TYPES: dict[str, type[Layer]] = {**ACTIVATIONS, "rounded_sigmoid": quirks.RoundedSigmoid}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """The improved variant: ``base`` with each ``[improved.<table>]`` setting replacing the
    faithful one whole (a changed loss or optimiser keeps none of the faithful one's keys)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(copy.deepcopy(value))
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Recipe:
    """A parsed recipe file: the seed's facts and the faithful and improved settings."""

    name: str
    title: str
    seed: dict[str, Any]
    faithful: dict[str, Any]
    improved: dict[str, Any]

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "<recipe>") -> Recipe:
        missing = [k for k in ("name", "seed", "data", "model", "training") if k not in d]
        if missing:
            raise ValueError(f"{origin}: recipe lacks {', '.join(missing)}")
        base = {k: d[k] for k in ("data", "model", "training")}
        base["notes"] = d.get("notes", "")
        improved = _merge(base, d.get("improved", {}))
        seed = dict(d["seed"])
        if seed.get("metric") not in ("valid", "test"):
            raise ValueError(f"{origin}: [seed] metric must be 'valid' or 'test'")
        return cls(d["name"], d.get("title", ""), seed, base, improved)

    def variant(self, name: str) -> dict[str, Any]:
        if name not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {name!r}")
        return self.faithful if name == "faithful" else self.improved

    @property
    def accept(self) -> tuple[float, float]:
        """The range a faithful run must land in (default: the reported figure ± 1 pp)."""
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
        text, origin = path.read_text(), str(path)
    else:
        names = recipe_names()
        if str(name_or_path) not in names:
            raise ValueError(f"unknown recipe {str(name_or_path)!r}; built-in recipes: {', '.join(names)}")
        text = (resources.files(__package__) / f"{name_or_path}.toml").read_text()
        origin = f"{name_or_path}.toml"
    try:
        return Recipe.from_dict(tomllib.loads(text), origin)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: not valid TOML ({exc})") from None


def _per_layer(value: Any, n: int, what: str) -> list[Any]:
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"[model] {what} lists {len(value)} entries for {n} Linear layers")
        return value
    return [value] * n


def build_model(spec: dict[str, Any], n_out: int | None = None, seed: int = 0) -> Sequential:
    """The network a ``[model]`` table describes: ``sizes``, ``activations`` (one per Linear
    layer, ``"none"`` for raw outputs), ``bias``, ``weight_init``/``bias_init`` (one or per
    layer), ``linear`` (``Linear`` or a quirk type). ``n_out`` replaces the last size."""
    sizes = list(spec["sizes"])
    if n_out is not None:
        sizes[-1] = n_out
    n = len(sizes) - 1
    acts = _per_layer(spec.get("activations", "relu"), n, "activations")
    weight_init = _per_layer(spec.get("weight_init", "he_normal"), n, "weight_init")
    bias_init = _per_layer(spec.get("bias_init", "zeros"), n, "bias_init")
    linear = LINEAR_TYPES[spec.get("linear", "Linear")]
    rng = np.random.default_rng(seed)
    layers: list[Layer] = []
    for i in range(n):
        layers.append(linear(sizes[i], sizes[i + 1], bias=bool(spec.get("bias", True)),
                             weight_init=weight_init[i], bias_init=bias_init[i], rng=rng))
        if acts[i] != "none":
            if acts[i] not in ACTIVATION_TYPES:
                raise ValueError(f"unknown activation {acts[i]!r}; choose one of {sorted(ACTIVATION_TYPES)}")
            layers.append(ACTIVATION_TYPES[acts[i]]())
    return Sequential(layers)


@dataclass
class Result:
    """One recipe run and how it compares with its seed."""

    recipe: str
    variant: str
    metric: str
    reported: float | None
    accuracy: float
    accept: tuple[float, float]
    seconds: float
    epochs: int
    note: str
    seed_seconds: float | None = None
    target_epoch: int | None = None
    target_seconds: float | None = None
    history: dict[str, Any] = field(default_factory=dict, repr=False)

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


def times(ratio: float | None) -> str:
    """``12.3`` -> ``"12x faster"``, ``1.46`` -> ``"1.5x faster"``, ``0.5`` -> ``"2.0x slower"``."""
    if ratio is None:
        return ""
    if ratio >= 10:
        return f"{ratio:.0f}x faster"
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def accuracy(model: Sequential, loss: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``y`` (n,) that ``model`` gets right on ``x`` (n, d)."""
    if len(x) == 0:
        return float("nan")
    return float(np.mean(loss.predict_labels(model.predict(x)) == y))


def run_recipe(recipe: Recipe | str, variant: str = "faithful", *, data_dir: str | Path | None = None,
               fetch: bool = True, digits: list[int] | None = None, seed: int | None = None,
               epochs: int | None = None, log: Log = print,
               data_cache: dict[str, RecipeData] | None = None) -> Result:
    """Train one variant of a recipe and return its :class:`Result`.

    ``digits`` trains on other digits than the recipe's (the seed figure then does not
    apply); ``seed`` and ``epochs`` override the recipe's; ``data_cache`` lets several
    runs share loaded data (keyed by the ``[data]`` table).
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    spec = recipe.variant(variant)
    data_spec, model_spec, train_spec = spec["data"], spec["model"], dict(spec["training"])
    key = json.dumps([data_spec, digits], sort_keys=True)
    t_start = time.perf_counter()
    if data_cache is not None and key in data_cache:
        data = data_cache[key]
    else:
        data = load_recipe_data(data_spec, data_dir=data_dir, fetch=fetch, digits=digits, log=log)
        if data_cache is not None:
            data_cache[key] = data
    log(f"{recipe.name} ({variant}): data: {data.note}")
    n_out = 1 if model_spec["sizes"][-1] == 1 else len(data.classes)
    if n_out == 1 and len(data.classes) != 2:
        raise ValueError(f"{recipe.name} is a binary task: give exactly two digits, got {data.classes}")
    run_seed = int(train_spec.get("seed", 0) if seed is None else seed)
    model = build_model(model_spec, n_out, run_seed)
    loss = quirks.make_loss(train_spec["loss"])
    n_epochs = int(epochs or train_spec["epochs"])
    batch = int(train_spec.get("batch_size", 0)) or len(data.x_train)
    optimizer_spec = dict(train_spec["optimizer"])
    if optimizer_spec.get("schedule") == "cosine":
        optimizer_spec["schedule"] = {"name": "cosine", "epochs": n_epochs}
    extra = {}
    if optimizer_spec["name"] in quirks.QUIRK_OPTIMIZERS:  # its step needs the batch size
        if len(data.x_train) % batch:
            raise ValueError(f"{recipe.name}: {optimizer_spec['name']} needs batches of equal size; "
                             f"{batch} does not divide {len(data.x_train)} training images")
        extra = {"samples": batch}
    optimizer = quirks.make_optimizer(optimizer_spec, **extra)
    metric = recipe.seed["metric"]
    same_task = digits is None or list(digits) == list(data_spec.get("digits") or range(10))
    reported = float(recipe.seed["reported"]) if same_task else None
    # improved runs evaluate the seed's split every epoch, to time when they pass the seed
    watch = variant == "improved" and reported is not None
    x_m, y_m = data.split(metric)
    every = max(1, n_epochs // 10)

    def report(epoch: int, h: History) -> None:
        if epoch % every == 0 or epoch == n_epochs:
            extra = f" {metric} acc {h.val_accuracy[-1]:.4f}" if watch else ""
            log(f"  epoch {epoch}/{n_epochs}: loss {h.loss[-1]:.4f} "
                f"train acc {h.train_accuracy[-1]:.4f}{extra}")

    history = fit(model, loss, optimizer, data.x_train, data.y_train, epochs=n_epochs, batch_size=batch,
                  shuffle=bool(train_spec.get("shuffle", True)), seed=run_seed, progress=False,
                  validation_data=(x_m, y_m) if watch else None, on_epoch_end=report)
    result = Result(recipe.name, variant, metric, reported, accuracy(model, loss, x_m, y_m),
                    recipe.accept, history.train_seconds, len(history.epoch), data.note,
                    seed_seconds=recipe.seed.get("seconds"), history=history.to_dict())
    if watch:
        elapsed = np.cumsum(history.seconds)
        for i, acc in enumerate(history.val_accuracy):
            if acc >= reported:
                result.target_epoch, result.target_seconds = i + 1, float(elapsed[i])
                break
    log(f"{recipe.name} ({variant}): {metric} accuracy {result.accuracy:.4f} "
        f"({time.perf_counter() - t_start:.1f} s with data loading)")
    return result
