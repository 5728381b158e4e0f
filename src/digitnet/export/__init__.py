"""Trained models in other formats. :mod:`.onnx` writes ONNX (raw pixels in, labels and
probabilities out); it needs the ``onnx`` extra, imported only when an export runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ExportError

__all__ = ["ExportError", "export_onnx", "onnx_module"]


def onnx_module() -> Any:
    """:mod:`digitnet.export.onnx`, or an :class:`ExportError` saying what to install."""
    try:
        from . import onnx as exporter
    except ImportError as exc:
        missing = exc.name or "the onnx package"
        raise ExportError(f"ONNX export needs {missing}, which is not installed: "
                          "pip install 'digitnet[onnx]'") from None
    return exporter


def export_onnx(classifier: Any, path: str | Path) -> Path:
    """Write ``classifier`` (a :class:`~digitnet.classifier.Classifier`) as an ONNX model."""
    return onnx_module().save_onnx(classifier, path)
