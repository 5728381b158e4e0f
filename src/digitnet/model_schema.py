"""The schema of a model file's metadata, checked before anything is built from it.

A model file comes from anywhere, so its metadata is validated as data first: every field's
type and range (:data:`MODEL_SCHEMA`, a small declarative description), then what the fields
imply together (:func:`check_model_meta`): the layers chain, their parameter count is at most
:data:`MAX_PARAMETERS` (and, once built, no layer needs more than :data:`MAX_SAMPLE_VALUES`
values for one sample), the normalisation statistics fit the input size, the classes fit the
output layer. Each violation is a :class:`SchemaError` naming the field
(``architecture.layers[2].out_features: must be an integer in 1..65536, got -3``); the
model file reader adds the file's name. Only then are the layers built (their allocation
now bounded) and the stored arrays compared with them.

The checks are functions ``check(value, where) -> value``; :func:`mapping`, :func:`list_of`
and friends make them from a description.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .data.scaling import Normalizer
from .errors import DigitnetError

MAX_LAYERS = 256
MAX_FEATURES = 65_536  # inputs or outputs of one layer, and values of one input sample
MAX_CHANNELS = 4_096  # channels in or out of one convolution
MAX_KERNEL = 64  # a convolution's or pooling window's side, stride and padding
#: The most values one sample may need inside one layer (its output, or a convolution's
#: unfolded patches): 64 MB as float32, so an evaluation batch of one always fits.
MAX_SAMPLE_VALUES = 1 << 24
MAX_PARAMETERS = 16_000_000  # 64 MB as float32 (the default network has 203,530)
MAX_CLASSES = 1_000
MAX_LABEL = 2**31  # class labels are in [-MAX_LABEL, MAX_LABEL)
MAX_NAME = 100  # characters of a component's or module's name
NORMALIZATION_METHODS = Normalizer.METHODS
MODEL_DTYPES = ("float32", "float64")

Check = Callable[[Any, str], Any]


class SchemaError(DigitnetError, ValueError):
    """Metadata does not follow the schema; the message starts with the field's path."""


def _fail(where: str, message: str, value: Any = ...) -> SchemaError:
    shown = "" if value is ... else f", got {_show(value)}"
    return SchemaError(f"{where}: {message}{shown}")


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- building blocks
def integer(lo: int, hi: int) -> Check:
    """An int (not a bool) in ``lo..hi``."""
    def check(value: Any, where: str) -> int:
        if type(value) is not int or not lo <= value <= hi:
            raise _fail(where, f"must be an integer in {lo}..{hi}", value)
        return value
    return check


def number(*, positive: bool = False, lo: float | None = None, below: float | None = None) -> Check:
    """A finite int or float (not a bool), optionally > 0, >= ``lo``, < ``below``."""
    def check(value: Any, where: str) -> float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise _fail(where, "must be a finite number", value)
        if (positive and value <= 0) or (lo is not None and value < lo) or (below is not None
                                                                              and value >= below):
            bounds = "> 0" if positive else f"in [{lo}, {below})"
            raise _fail(where, f"must be {bounds}", value)
        return value
    return check


def string(*choices: str, max_len: int = MAX_NAME) -> Check:
    """A str of at most ``max_len`` characters, one of ``choices`` when given."""
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > max_len:
            raise _fail(where, f"must be a string of at most {max_len} characters", value)
        if choices and value not in choices:
            raise _fail(where, f"must be one of {', '.join(choices)}", value)
        return value
    return check


def boolean(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise _fail(where, "must be true or false", value)
    return value


def optional(check: Check) -> Check:
    """``check``, or None."""
    return lambda value, where: None if value is None else check(value, where)


def anything(value: Any, where: str) -> Any:
    return value


def list_of(item: Check, *, min_len: int = 0, max_len: int, distinct: bool = False) -> Check:
    """A list of ``min_len..max_len`` items, each passing ``item``."""
    def check(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or not min_len <= len(value) <= max_len:
            raise _fail(where, f"must be a list of {min_len} to {max_len} items", value)
        out = [item(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if distinct and len(set(out)) != len(out):
            raise _fail(where, "must not repeat a value")
        return out
    return check


def mapping(required: Mapping[str, Check], optional_keys: Mapping[str, Check] | None = None, *,
            other: Check | None = None, max_keys: int = 64) -> Check:
    """A dict with every ``required`` key, any of ``optional_keys``, and other keys only when
    ``other`` checks them."""
    allowed = {**required, **(optional_keys or {})}

    def check(value: Any, where: str) -> dict[str, Any]:
        prefix = f"{where}." if where else ""
        if not isinstance(value, dict) or len(value) > max_keys:
            raise _fail(where or "metadata", f"must be an object of at most {max_keys} keys", value)
        for key in required:
            if key not in value:
                raise _fail(f"{prefix}{key}", "is missing")
        out = {}
        for key, v in value.items():
            rule = allowed.get(key, other)
            if rule is None:
                raise _fail(f"{prefix}{key}", "is not a field of this object")
            out[key] = rule(v, f"{prefix}{key}")
        return out
    return check


def scalar(value: Any, where: str) -> Any:
    """A JSON scalar (finite number, string, bool, None), or a small object of them (an
    initializer's config)."""
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return string(max_len=1000)(value, where)
    if isinstance(value, dict):
        return mapping({}, other=scalar, max_keys=16)(value, where)
    return number()(value, where)


def pair(lo: int, hi: int) -> Check:
    """An int in ``lo..hi``, or a list of two (a convolution's height and width)."""
    one = integer(lo, hi)

    def check(value: Any, where: str) -> int | list[int]:
        if isinstance(value, list):
            return list_of(one, min_len=2, max_len=2)(value, where)
        return one(value, where)
    return check


# --------------------------------------------------------------------------- the model file
SHAPE = list_of(integer(1, MAX_FEATURES), min_len=1, max_len=4)
LAYER = mapping({"type": string()}, {"in_features": integer(1, MAX_FEATURES),
                                     "out_features": integer(1, MAX_FEATURES), "bias": boolean,
                                     "in_channels": integer(1, MAX_CHANNELS),
                                     "out_channels": integer(1, MAX_CHANNELS),
                                     "num_features": integer(1, MAX_FEATURES),
                                     "kernel_size": pair(1, MAX_KERNEL), "stride": pair(1, MAX_KERNEL),
                                     "padding": pair(0, MAX_KERNEL), "shape": SHAPE},
                other=scalar, max_keys=32)
STATISTIC = optional(lambda v, w: number()(v, w) if not isinstance(v, list)
                     else list_of(number(), max_len=MAX_FEATURES)(v, w))
NORMALIZATION = mapping({"method": string(*NORMALIZATION_METHODS)}, {
    "per_pixel": boolean, "n_features": optional(integer(1, MAX_FEATURES)),
    "std_floor": optional(number(positive=True)),
    "mean": STATISTIC, "std": STATISTIC, "min": STATISTIC, "max": STATISTIC})

MODEL_SCHEMA = mapping(
    {"kind": string("model"), "architecture": mapping({"layers": list_of(LAYER, min_len=1,
                                                                         max_len=MAX_LAYERS)},
                                                      {"input_shape": SHAPE}),
     "dtype": string(*MODEL_DTYPES), "loss": mapping({"name": string()}, other=scalar, max_keys=16),
     "normalization": NORMALIZATION,
     "classes": list_of(integer(-MAX_LABEL, MAX_LABEL - 1), min_len=2, max_len=MAX_CLASSES, distinct=True)},
    {"format": string("digitnet"), "format_version": integer(0, 1_000), "digitnet_version": string(),
     "components": mapping({}, other=string(), max_keys=MAX_LAYERS + 1),
     "spec": mapping({}, other=anything), "metrics": mapping({}, other=anything),
     "dataset": mapping({}, other=anything)},
    other=anything, max_keys=256)


def _non_finite(value: Any, where: str) -> None:
    """Refuse NaN and infinity anywhere (JSON has neither; Python's reader lets them in)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, "must be a finite number", value)
    if isinstance(value, dict):
        for k, v in value.items():
            _non_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _non_finite(v, f"{where}[{i}]")


def parameter_count(layers: list[dict[str, Any]]) -> int:
    """Values the layers declare: ``in * out (+ out)`` for each layer with feature sizes,
    ``in * out * kh * kw (+ out)`` for a convolution, four per feature for batch norm (scale,
    shift and two running statistics)."""
    count = 0
    for layer in layers:
        bias = layer.get("bias", True) is not False
        if "in_features" in layer:
            count += layer["in_features"] * layer["out_features"] + (layer["out_features"] if bias else 0)
        if "in_channels" in layer:
            kernel = layer.get("kernel_size", 3)
            kh, kw = kernel if isinstance(kernel, list) else (kernel, kernel)
            out = layer.get("out_channels", 1)
            count += layer["in_channels"] * out * kh * kw + (out if bias else 0)
        count += 4 * layer.get("num_features", 0)
    return count


def check_model_meta(meta: Any) -> dict[str, Any]:
    """Validate a model file's metadata (fields, then how they fit together); returns it.

    Raises :class:`SchemaError` naming the first field that is wrong."""
    _non_finite(meta, "")
    meta = MODEL_SCHEMA(meta, "")
    layers = meta["architecture"]["layers"]
    sized = [(i, layer) for i, layer in enumerate(layers) if ("in_features" in layer) != ("out_features"
                                                                                          in layer)]
    if sized:
        raise _fail(f"architecture.layers[{sized[0][0]}]", "must give both in_features and out_features")
    linear = [(i, layer) for i, layer in enumerate(layers) if "in_features" in layer]
    input_shape = meta["architecture"].get("input_shape")
    if input_shape is None and not linear:
        raise _fail("architecture", "must give input_shape or include a layer with in_features")
    if input_shape is not None and math.prod(input_shape) > MAX_FEATURES:
        raise _fail("architecture.input_shape", f"must hold at most {MAX_FEATURES:,} values per sample",
                    input_shape)
    for (_, before), (i, layer) in zip(linear, linear[1:], strict=False):
        if layer["in_features"] != before["out_features"]:
            raise _fail(f"architecture.layers[{i}].in_features",
                        f"must equal the previous layer's out_features ({before['out_features']})",
                        layer["in_features"])
    count = parameter_count(layers)
    if count > MAX_PARAMETERS:
        raise _fail("architecture.layers", f"declare {count:,} parameters, over the limit of "
                                           f"{MAX_PARAMETERS:,}")
    n_inputs = math.prod(input_shape) if input_shape is not None else linear[0][1]["in_features"]
    _check_normalization(meta["normalization"], n_inputs)
    return meta


def _check_normalization(norm: dict[str, Any], n_inputs: int) -> None:
    """The statistics a method needs are there, finite, of the input size; std > 0."""
    where = "normalization"
    n = norm.get("n_features")
    if n is not None and n != n_inputs:
        raise _fail(f"{where}.n_features", f"must equal the values of one input sample ({n_inputs})", n)
    method, per_pixel = norm["method"], norm.get("per_pixel", False)
    needed = {"zscore": ("mean", "std"), "minmax": ("min", "max")}.get(method, ())
    for key in needed:
        value = norm.get(key)
        if value is None:
            raise _fail(f"{where}.{key}", f"is missing (the {method} method needs it)")
        per_feature = method == "minmax" or per_pixel
        if per_feature and (not isinstance(value, list) or len(value) != n_inputs):
            raise _fail(f"{where}.{key}", f"must be a list of {n_inputs} numbers", value)
        if not per_feature and isinstance(value, list):
            raise _fail(f"{where}.{key}", "must be one number (per_pixel is false)", value)
        if key == "std" and min(value if isinstance(value, list) else [value]) <= 0:
            raise _fail(f"{where}.std", "must be positive")
