"""A trained classifier as one ONNX graph: raw 0-255 pixels in, labels and probabilities out.

The graph does everything :meth:`digitnet.classifier.Classifier.predict_with_proba` does:

1. ``pixels`` (float32, ``(n, 784)``: the model's input shape after the batch axis) is
   scaled by the model's normaliser, ``(x - shift) * scale`` in float32 with the very
   constants digitnet uses (:meth:`~digitnet.data.scaling.Normalizer.affine`), then cast to
   the network's dtype;
2. every layer, in order, through :data:`LAYER_EXPORTERS` (one function per layer type);
3. ``probabilities`` through the loss's link (:data:`LOSS_EXPORTERS`): softmax for
   cross-entropy, ``[1 - p, p]`` of a sigmoid for binary cross-entropy, and for networks
   whose outputs are scores (MSE) the scores clipped at 1e-12 and divided by their sum;
4. ``label``: the class index (argmax, or a threshold for one output) looked up in the
   class labels, which are also in the model's metadata (``classes``, JSON).

A layer type gets exported by registering a function ``(layer, graph, input name) -> output
name`` with :func:`register_layer`; a layer without one is an :class:`ExportError` naming it.
The graph is built with the ``onnx`` package's helpers and checked by ``onnx.checker``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import __version__
from ..atomic import write_bytes
from ..classifier import Classifier
from ..errors import ExportError
from ..nn.layers import Layer

__all__ = ["LAYER_EXPORTERS", "LOSS_EXPORTERS", "OPSET", "Graph", "check_with_onnxruntime", "register_layer",
           "save_onnx", "to_onnx"]

#: The operator set the graphs use (every op here has had its current form since opset 13).
OPSET = 17
#: The file format version that goes with :data:`OPSET` (onnxruntime 1.13 and later read it).
IR_VERSION = 8
INPUT, LABEL, PROBABILITIES = "pixels", "label", "probabilities"


@dataclass
class Graph:
    """The graph being built: nodes in order, constant tensors, and fresh names.

    ``dtype`` is the network's (float32 or float64); constants of the layers are in it."""

    dtype: np.dtype
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    _used: dict[str, int] = field(default_factory=dict)

    def name(self, hint: str) -> str:
        """A name no other value in the graph has: ``hint``, ``hint_1``, ..."""
        n = self._used.get(hint, 0)
        self._used[hint] = n + 1
        return hint if n == 0 else f"{hint}_{n}"

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        """A constant tensor (in the network's dtype unless ``dtype`` says otherwise)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attributes: Any) -> str:
        """One node with one output, whose name is returned."""
        out = self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(f"{hint}/{op_type}"),
                                           **attributes))
        return out

    @property
    def elem_type(self) -> int:
        return helper.np_dtype_to_tensor_dtype(self.dtype)


LayerExporter = Callable[[Layer, Graph, str], str]
#: Layer type (its registered name) -> the function that writes it into a graph.
LAYER_EXPORTERS: dict[str, LayerExporter] = {}


def register_layer(*names: str) -> Callable[[LayerExporter], LayerExporter]:
    """Register an exporter for the layer types ``names`` (``LAYERS`` names, not aliases)."""
    def add(fn: LayerExporter) -> LayerExporter:
        for name in names:
            LAYER_EXPORTERS[name] = fn
        return fn
    return add


# --------------------------------------------------------------------------- layers
@register_layer("Linear", "ScalarBiasLinear")  # seed 002's layer differs only in training
def _linear(layer: Layer, g: Graph, x: str) -> str:
    weight = g.const(layer.params["weight"], "weight")
    if "bias" not in layer.params:
        return g.op("MatMul", [x, weight], "linear")
    return g.op("Gemm", [x, weight, g.const(layer.params["bias"], "bias")], "linear")


@register_layer("ReLU")
def _relu(layer: Layer, g: Graph, x: str) -> str:
    return g.op("Relu", [x], "relu")


@register_layer("LeakyReLU")
def _leaky_relu(layer: Layer, g: Graph, x: str) -> str:
    # x * slope, as digitnet computes it, with slope 1 where x > 0 and alpha elsewhere
    slope = g.op("Where", [g.op("Greater", [x, g.const(0, "zero")], "positive"), g.const(1, "one"),
                           g.const(layer.alpha, "alpha")], "slope")
    return g.op("Mul", [x, slope], "leaky_relu")


@register_layer("Sigmoid", "RoundedSigmoid")  # seed 001's sigmoid rounds only its derivative
def _sigmoid(layer: Layer, g: Graph, x: str) -> str:
    return g.op("Sigmoid", [x], "sigmoid")


@register_layer("Tanh")
def _tanh(layer: Layer, g: Graph, x: str) -> str:
    return g.op("Tanh", [x], "tanh")


@register_layer("Softmax")
def _softmax(layer: Layer, g: Graph, x: str) -> str:
    return g.op("Softmax", [x], "softmax", axis=1)


@register_layer("Dropout")
def _dropout(layer: Layer, g: Graph, x: str) -> str:
    return x  # in inference dropout passes its input through


# --------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class LossExporter:
    """How a loss turns outputs into probabilities in a graph, and where a network with one
    output draws the line between the two classes (the loss's ``predict_labels``)."""

    probabilities: Callable[[Graph, str, int], str]  # (graph, outputs, n_classes) -> probabilities
    threshold: float = 0.5


def _softmax_link(g: Graph, outputs: str, k: int) -> str:
    return g.op("Softmax", [outputs], PROBABILITIES, axis=1)


def _two_columns(g: Graph, outputs: str, k: int) -> str:
    p1 = g.op("Sigmoid", [g.op("Reshape", [outputs, g.const([-1, 1], "column", np.int64)], "logit")], "p1")
    p0 = g.op("Sub", [g.const(1, "one"), p1], "p0")
    return g.op("Concat", [p0, p1], PROBABILITIES, axis=1)


def _scores(link: Callable[[Graph, str], str] | None = None) -> Callable[[Graph, str, int], str]:
    """Outputs that are scores, not probabilities (MSE, a seed's own loss): the link, NaN to
    0, clipped at 1e-12, divided by the row's sum, as :class:`Classifier` does."""
    def probabilities(g: Graph, outputs: str, k: int) -> str:
        p = outputs if link is None else link(g, outputs)
        p = g.op("Where", [g.op("IsNaN", [p], "is_nan"), g.const(0, "zero"), p], "finite")
        p = g.op("Max", [p, g.const(1e-12, "floor")], "clipped")
        total = g.op("ReduceSum", [p, g.const([1], "axis", np.int64)], "total", keepdims=1)
        return g.op("Div", [p, total], PROBABILITIES)
    return probabilities


def _unshifted_softmax(g: Graph, outputs: str) -> str:
    """Seed 002's link, ``exp(z) / sum(exp(z))`` without the shift, overflow and all."""
    e = g.op("Exp", [outputs], "exp")
    return g.op("Div", [e, g.op("ReduceSum", [e, g.const([1], "axis", np.int64)], "sum", keepdims=1)],
                "softmax")


#: Loss name -> how the graph ends for it.
LOSS_EXPORTERS: dict[str, LossExporter] = {
    "cross_entropy": LossExporter(_softmax_link),
    "binary_cross_entropy": LossExporter(_two_columns, threshold=0.0),
    "mse": LossExporter(_scores()),
    "unstable_cross_entropy": LossExporter(_scores(_unshifted_softmax)),
}


# --------------------------------------------------------------------------- the graph
def _normalize(clf: Classifier, g: Graph, x: str, sample_shape: tuple[int, ...]) -> str:
    """The normaliser, in float32 as digitnet computes it; per-pixel constants take the shape
    of one sample."""
    shift, scale = clf.normalizer.affine(np.float32)

    def shaped(a: np.ndarray) -> np.ndarray:
        return a.reshape(sample_shape) if a.size > 1 and a.size == int(np.prod(sample_shape)) else a

    if shift is not None:
        x = g.op("Sub", [x, g.const(shaped(shift), "shift", np.float32)], "shifted")
    if scale is not None:
        x = g.op("Mul", [x, g.const(shaped(scale), "scale", np.float32)], "scaled")
    if g.dtype != np.float32:
        x = g.op("Cast", [x], "inputs", to=g.elem_type)
    return x


def to_onnx(clf: Classifier) -> onnx.ModelProto:
    """The ONNX model of ``clf`` (checked by ``onnx.checker``); see the module's description."""
    model, loss, classes = clf.model, clf.loss, list(clf.classes)
    for i, layer in enumerate(model.layers):
        if layer.name not in LAYER_EXPORTERS:
            raise ExportError(f"cannot export layer {i}, {layer.brief()}, to ONNX: there is no exporter for "
                              f"{layer.name} layers (there are for {', '.join(sorted(LAYER_EXPORTERS))})")
    if loss.name not in LOSS_EXPORTERS:
        raise ExportError(f"cannot export a network trained with the {loss.name} loss to ONNX: there is no "
                          f"exporter for its probabilities (there are for {', '.join(LOSS_EXPORTERS)})")
    k, width = len(classes), model.output_size
    if width != k and not (width == 1 and k == 2 and loss.name == "binary_cross_entropy"):
        raise ExportError(f"the {loss.name} loss gives {width} outputs for {k} classes, and digitnet "
                          "defines no probabilities for that to export")
    g = Graph(np.dtype(model.dtype))
    sample = tuple(model.input_shape)
    h = _normalize(clf, g, INPUT, sample)
    for layer in model.layers:
        h = LAYER_EXPORTERS[layer.name](layer, g, h)
    exporter = LOSS_EXPORTERS[loss.name]
    if exporter.probabilities(g, h, k) != PROBABILITIES:
        raise ValueError(f"the {loss.name} exporter must end in a value named {PROBABILITIES!r}")
    if width == 1:
        flat = g.op("Reshape", [h, g.const([-1], "flat", np.int64)], "score")
        index = g.op("Cast", [g.op("Greater", [flat, g.const(exporter.threshold, "threshold")], "above")],
                     "index", to=TensorProto.INT64)
    else:
        index = g.op("ArgMax", [h], "index", axis=1, keepdims=0)
    g.nodes.append(helper.make_node("Gather", [g.const(classes, "classes", np.int64), index], [LABEL],
                                    name="label/Gather", axis=0))
    graph = helper.make_graph(
        g.nodes, "digitnet",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["n", *sample])],
        [helper.make_tensor_value_info(LABEL, TensorProto.INT64, ["n"]),
         helper.make_tensor_value_info(PROBABILITIES, g.elem_type, ["n", k])],
        g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="digitnet", producer_version=__version__,
                                   doc_string="raw 0-255 pixels in; class labels and probabilities out")
    onnx_model.ir_version = IR_VERSION
    props = {"classes": json.dumps(classes), "normalization": clf.normalizer.method,
             "input": f"{INPUT}: raw pixel values 0-255, float32 (n, {', '.join(map(str, sample))})",
             "layers": json.dumps([layer.brief() for layer in model.layers])}
    if isinstance(clf.metadata.get("spec"), dict):
        props["spec"] = json.dumps(clf.metadata["spec"])
    helper.set_model_props(onnx_model, props)
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def save_onnx(clf: Classifier, path: str | Path) -> Path:
    """Write :func:`to_onnx` of ``clf`` to ``path`` (atomically)."""
    return write_bytes(Path(path), to_onnx(clf).SerializeToString())


def check_with_onnxruntime(onnx_model: onnx.ModelProto | bytes | str | Path, clf: Classifier,
                           pixels: np.ndarray) -> dict[str, Any]:
    """Run the exported model in onnxruntime on ``pixels`` (raw 0-255, ``(n, 784)``) and
    compare with digitnet: ``{"images", "label_mismatches", "max_probability_difference"}``."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("checking an export needs onnxruntime: pip install 'digitnet[onnx]'") from None
    if isinstance(onnx_model, onnx.ModelProto):
        onnx_model = onnx_model.SerializeToString()
    elif isinstance(onnx_model, Path):
        onnx_model = str(onnx_model)
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    x = np.asarray(pixels, dtype=np.float32).reshape(len(pixels), *clf.model.input_shape)
    labels, probabilities = session.run([LABEL, PROBABILITIES], {INPUT: x})
    ours_labels, ours = clf.predict_with_proba(np.asarray(pixels))
    return {"images": len(x), "label_mismatches": int(np.count_nonzero(labels != ours_labels)),
            "max_probability_difference": float(np.max(np.abs(probabilities - ours), initial=0.0)),
            "onnxruntime": onnxruntime.__version__}
