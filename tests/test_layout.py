"""The layout shows the architecture: the engine imports nothing else of digitnet, and the
import graph of ``src/digitnet`` has no cycles (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "digitnet"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The digitnet module an import refers to (a submodule, else the package holding it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    """digitnet modules that ``module`` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name == "digitnet" or name.startswith("digitnet."):
                target = _resolve(name)
                if target and target != module:
                    found.add(target)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_engine_imports_no_other_part_of_digitnet():
    engine = {m for m in MODULES if m == "digitnet.nn" or m.startswith("digitnet.nn.")}
    outside = {(m, t) for m in engine for t in GRAPH[m] if t not in engine}
    assert outside == set(), outside


def test_the_data_layer_imports_neither_the_engine_nor_anything_above_it():
    data = {m for m in MODULES if m.startswith("digitnet.data")}
    allowed = data | {"digitnet.atomic", "digitnet.errors"}
    outside = {(m, t) for m in data for t in GRAPH[m] if t not in allowed}
    assert outside == set(), outside


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycles():
    assert {"digitnet.spec", "digitnet.runs"} <= GRAPH["digitnet.experiment"]  # the graph is read
    assert "digitnet.nn.registry" in GRAPH["digitnet.nn.layers"]
    # a package's __init__ may gather its own submodules; an edge back into the package from
    # one of them would make a cycle too, so nothing is left out
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_each_command_is_a_module_and_cli_only_assembles_them():
    from digitnet.commands import COMMANDS

    assert {p.stem for p in (PACKAGE / "commands").glob("*.py")} - {"__init__", "common"} == set(COMMANDS)
    process = {"digitnet.heap"}  # the one setting of its own process the command makes
    assert GRAPH["digitnet.cli"] <= {"digitnet", "digitnet.commands", "digitnet.errors"} | process | \
        {f"digitnet.commands.{c}" for c in COMMANDS}


def third_party_imports(module: str) -> set[str]:
    """Top-level packages outside digitnet that ``module`` imports, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - {"digitnet"}


def test_scikit_learn_and_onnx_are_imported_by_their_own_modules_only():
    by = {name: {m for m in MODULES if name in third_party_imports(m)}
          for name in ("sklearn", "onnx", "onnxruntime")}
    assert by["sklearn"] == {"digitnet.estimator"}
    assert by["onnx"] == {"digitnet.export.onnx"}
    assert by["onnxruntime"] == {"digitnet.export.onnx", "digitnet.commands.export"}
