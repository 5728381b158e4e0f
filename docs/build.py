"""Build digitnet's documentation site: the API reference and the tutorials beside it.

    python docs/build.py                    # everything, into build/docs (open build/docs/index.html)
    python docs/build.py --api-only         # the API reference alone (seconds)
    python docs/build.py --tutorial 01      # one tutorial (any part of its file name)

The API reference is generated from the docstrings by pdoc, one page per module, and any
warning pdoc gives (an annotation it cannot resolve, a name in ``__all__`` that does not
exist) fails the build. Each tutorial in ``docs/tutorials/`` is a Jupytext percent-format
``.py`` file: it is read as a notebook, executed in a fresh Python kernel (nbclient), and
written out both as the executed ``.ipynb`` and rendered as HTML with its figures inline
(nbconvert); a cell that raises fails the build. ``DIGITNET_TUTORIAL_SMALL=1`` makes the
tutorials train on small subsets (what CI does). Needs the ``docs`` extra.
"""

from __future__ import annotations

import argparse
import html
import os
import pkgutil
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUTORIALS = HERE / "tutorials"
TEMPLATES = HERE / "pdoc"
DEFAULT_OUT = HERE.parent / "build" / "docs"
TUTORIAL_TIMEOUT = 300  # seconds per cell; a tutorial is meant to take under a minute in all


class DocsError(RuntimeError):
    """The site cannot be built as it is: a pdoc warning, or a tutorial cell that failed."""


def modules() -> list[str]:
    """Every module of digitnet, by dotted name (``digitnet``, ``digitnet.cli``, ...)."""
    import digitnet

    names = ["digitnet"]
    for info in pkgutil.walk_packages(digitnet.__path__, "digitnet."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


def module_page(out: Path, module: str) -> Path:
    """Where pdoc writes a module's page: ``digitnet.data.sources`` -> ``digitnet/data/sources.html``."""
    return out.joinpath(*module.split(".")).with_suffix(".html")


def build_api(out: Path) -> list[Path]:
    """Write the API reference into ``out`` (one HTML page per module); a warning is an error."""
    import pdoc.doc
    import pdoc.render

    pdoc.render.configure(docformat="restructuredtext", template_directory=TEMPLATES,
                          footer_text="digitnet", show_source=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # what pdoc.pdoc() does, for every module: pdoc itself would follow a package's __all__
        # and skip the submodules it does not list (digitnet.data.sources, ...)
        documented = {name: pdoc.doc.Module.from_name(name) for name in modules()}
        for name, module in documented.items():
            page = module_page(out, name)
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(pdoc.render.html_module(module, documented), encoding="utf-8")
        (out / "search.js").write_text(pdoc.render.search_index(documented), encoding="utf-8")
    problems = [f"{w.category.__name__}: {w.message}" for w in caught]
    if problems:
        raise DocsError("the API reference has warnings:\n  " + "\n  ".join(problems))
    pages = [module_page(out, m) for m in modules()]
    missing = [str(p) for p in pages if not p.is_file()]
    if missing:
        raise DocsError(f"pdoc wrote no page for {', '.join(missing)}")
    return pages


@dataclass
class Tutorial:
    """One executed tutorial: its source, title, the notebook, and how long it ran."""

    source: Path
    title: str
    notebook: object
    seconds: float

    @property
    def stem(self) -> str:
        return self.source.stem


def tutorial_files(select: str | None = None) -> list[Path]:
    """The tutorials in order (``01_...py``, ``02_...py``), or those whose name contains ``select``."""
    files = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
    return [f for f in files if select is None or select in f.stem]


def kernel_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a tutorial's kernel runs in: ours, without ``MPLBACKEND`` (which would
    keep figures out of the notebook), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    return {**env, **(extra or {})}


def run_tutorial(path: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Tutorial:
    """Execute one tutorial as a notebook; a failing cell is a :class:`DocsError` naming it."""
    import jupytext
    import nbclient
    from nbclient.exceptions import CellExecutionError

    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=TUTORIAL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd or path.parent)}})
    started = time.perf_counter()
    try:
        client.execute(env=kernel_env(env))
    except CellExecutionError as exc:
        raise DocsError(f"{path.name}: a cell failed\n{exc}") from None
    seconds = time.perf_counter() - started
    title = next((m.group(1) for cell in notebook.cells if cell.cell_type == "markdown"
                  for m in [re.search(r"^#\s+(.+)$", cell.source, re.M)] if m), path.stem)
    return Tutorial(path, title, notebook, seconds)


def render_tutorial(tutorial: Tutorial, out: Path) -> Path:
    """Write the executed notebook and its HTML page (figures inline) into ``out``."""
    import nbformat
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(tutorial.notebook, out / f"{tutorial.stem}.ipynb")
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(tutorial.notebook)
    nav = (f'<nav style="padding:.6em 1em;font-family:system-ui,sans-serif">'
           f'<a href="../index.html">digitnet documentation</a> &middot; <a href="index.html">tutorials</a> '
           f'&middot; <a href="{tutorial.stem}.ipynb">download this notebook</a></nav>')
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)
    page = out / f"{tutorial.stem}.html"
    page.write_text(body, encoding="utf-8")
    return page


def _page(title: str, content: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;"
            "line-height:1.5;color:#222}a{color:#1f6fb4}li{margin:.2em 0}</style></head>"
            f"<body>{content}</body></html>\n")


def write_index(out: Path, tutorials: list[tuple[str, str]]) -> Path:
    """The site's front page (tutorials, then one link per module) and the tutorials' index."""
    items = "".join(f'<li><a href="tutorials/{stem}.html">{html.escape(title)}</a></li>'
                    for stem, title in tutorials) or "<li>(not built: run docs/build.py)</li>"
    api = "".join(f'<li><a href="{module_page(Path(), m).as_posix()}"><code>{m}</code></a></li>'
                  for m in modules())
    (out / "tutorials").mkdir(parents=True, exist_ok=True)
    (out / "tutorials" / "index.html").write_text(_page("digitnet tutorials", (
        '<p><a href="../index.html">digitnet documentation</a></p><h1>Tutorials</h1><ol>'
        + items.replace('href="tutorials/', 'href="') + "</ol>")), encoding="utf-8")
    index = out / "index.html"
    index.write_text(_page("digitnet documentation", (
        "<h1>digitnet</h1><p>Neural networks written from scratch in NumPy, for handwritten digits "
        "and the rest of the MNIST family.</p><h2>Tutorials</h2><ol>" + items + "</ol>"
        "<h2>API reference</h2><p>One page per module, generated from the docstrings.</p><ul>"
        + api + "</ul>")), encoding="utf-8")
    return index


def build(out: Path = DEFAULT_OUT, *, api: bool = True, tutorials: bool = True,
          select: str | None = None) -> Path:
    """Build the site into ``out``; return its front page."""
    out.mkdir(parents=True, exist_ok=True)
    if api:
        pages = build_api(out)
        print(f"API reference: {len(pages)} module pages", flush=True)
    done = []
    if tutorials:
        for path in tutorial_files(select):
            tutorial = run_tutorial(path)
            render_tutorial(tutorial, out / "tutorials")
            print(f"tutorial {path.name}: {tutorial.seconds:.1f} s", flush=True)
            done.append((tutorial.stem, tutorial.title))
    return write_index(out, done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default: build/docs)")
    parser.add_argument("--api-only", action="store_true", help="build the API reference only")
    parser.add_argument("--tutorial", default=None, help="build only the tutorials whose name contains this")
    args = parser.parse_args(argv)
    try:
        index = build(args.out, tutorials=not args.api_only, select=args.tutorial)
    except DocsError as exc:
        print(f"docs: error: {exc}", file=sys.stderr)
        return 1
    print(f"site: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
