"""Plotting stays out of the engine: importing digitnet.nn or digitnet.data (or building the
command line) loads neither matplotlib nor plotly. Each check runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

PLOTTING = ("matplotlib", "plotly")


def loaded_after(statement: str) -> list[str]:
    """Top-level plotting packages in ``sys.modules`` after running ``statement``."""
    code = (f"import sys\n{statement}\n"
            f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(PLOTTING)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


@pytest.mark.parametrize("statement", [
    "import digitnet.nn",
    "import digitnet.data",
    "import digitnet.nn, digitnet.data, digitnet.train, digitnet.classifier, digitnet.pca",
    "from digitnet.cli import build_parser; build_parser()",
])
def test_no_plotting_imports(statement):
    assert loaded_after(statement) == []


def test_the_check_can_see_plotting_imports():
    pytest.importorskip("matplotlib")
    pytest.importorskip("plotly")
    assert loaded_after("import digitnet.report") == ["matplotlib"]  # plotly loads when a page is drawn
    assert loaded_after("import digitnet.report; digitnet.report.plotly_js()") == ["matplotlib", "plotly"]


def third_party_after(statement: str) -> set[str]:
    """Top-level modules outside the standard library loaded by ``statement``."""
    code = (f"import sys\n{statement}\n"
            "print(','.join(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)"
            " - {'__main__', '__mp_main__'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {m for m in out.stdout.strip().split(",") if m and not m.startswith("_")}


def test_the_engine_needs_numpy_alone():
    assert third_party_after("import digitnet.nn") == {"digitnet", "numpy"}


def test_the_data_loaders_need_numpy_and_a_progress_bar_at_most():
    assert third_party_after("import digitnet.data, digitnet.train") <= {"digitnet", "numpy", "tqdm"}


def test_the_classifier_runs_and_the_command_line_load_neither_scikit_learn_nor_onnx():
    loaded = third_party_after("import digitnet.classifier, digitnet.runs, digitnet.experiment\n"
                               "import digitnet.export\n"
                               "from digitnet.cli import build_parser; build_parser()")
    assert loaded.isdisjoint({"sklearn", "scipy", "joblib", "onnx", "onnxruntime"}), loaded
