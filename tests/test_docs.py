"""The documentation builds: the API reference without a warning, and every tutorial executes
as a notebook on small data, with its figures inline (docs/build.py does the work)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

for module in ("pdoc", "jupytext", "nbclient", "nbconvert", "ipykernel"):
    pytest.importorskip(module, reason="the docs extra is not installed")


def _build_module():
    spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_build"] = module
    spec.loader.exec_module(module)
    return module


build = _build_module()

#: What each tutorial reads: none, MNIST, or MNIST and Fashion-MNIST.
NEEDS = {"01": (), "02": ("mnist",), "03": ("mnist",), "04": ("mnist",), "05": ("mnist", "fashion-mnist"),
         "06": ("mnist",)}


def data_root() -> Path | None:
    """A directory holding mnist/ and fashion-mnist/ (the tutorials read both through
    ``$DIGITNET_DATA``), or None."""
    named = os.environ.get("DIGITNET_DATA")
    for candidate in ([Path(named).parent, Path(named)] if named else []) + [SHARED]:
        if (candidate / "mnist").is_dir():
            return candidate
    return None


def test_every_tutorial_is_listed():
    assert [p.stem[:2] for p in build.tutorial_files()] == list(NEEDS)


@pytest.mark.parametrize("path", build.tutorial_files(), ids=lambda p: p.stem)
def test_tutorial_executes(path, tmp_path, monkeypatch):
    root = data_root()
    for name in NEEDS[path.stem[:2]]:
        if root is None or not (root / name).is_dir():
            pytest.skip(f"needs {name} (set DIGITNET_DATA, or put it in {SHARED})")
    env = {"DIGITNET_TUTORIAL_SMALL": "1", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    if root is not None:
        env["DIGITNET_DATA"] = str(root)
    tutorial = build.run_tutorial(path, env=env, cwd=tmp_path)
    page = build.render_tutorial(tutorial, tmp_path / "site")
    cells = [cell for cell in tutorial.notebook.cells if cell.cell_type == "code"]
    outputs = [o for cell in cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{path.name} shows no figure"
    assert page.read_text().count("data:image/png;base64") >= len(figures)
    assert tutorial.seconds < 240, f"{path.name} took {tutorial.seconds:.0f} s on small data"


def test_api_reference_builds_without_warnings(tmp_path):
    pages = build.build_api(tmp_path)
    assert len(pages) == len(build.modules()) > 30
    page = (tmp_path / "digitnet" / "data" / "datasets.html").read_text()
    assert "load_dataset" in page and "tutorials/index.html" in page
    index = build.write_index(tmp_path, [("01_one_neuron", "One neuron")])
    assert 'href="digitnet/data/sources.html"' in index.read_text()
    assert (tmp_path / "tutorials" / "index.html").is_file()


def test_a_failing_cell_fails_the_build(tmp_path):
    bad = tmp_path / "99_broken.py"
    bad.write_text("# %% [markdown]\n# # Broken\n\n# %%\nraise ValueError('this cell fails')\n")
    with pytest.raises(build.DocsError, match="99_broken.py: a cell failed"):
        build.run_tutorial(bad)
