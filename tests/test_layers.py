"""The package layers: each package imports only its own layer and the ones below, and packages form no cycle.

    core  <-  models, augment, losses, optim, data, eval  <-  stages  <-  config, runner  <-  inference, bench  <-  cli

Every module of `wam_pipe` is parsed with `ast` (imports inside functions and `if TYPE_CHECKING:` blocks count
too); the module list comes from the package directory, so a new module or package is checked without editing
this file, and a new package must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import wam_pipe

ROOT = Path(wam_pipe.__file__).parent
LAYERS = {
    "core": 0,
    "models": 1, "augment": 1, "losses": 1, "optim": 1, "data": 1, "eval": 1,
    "stages": 2,
    "config": 3, "runner": 3,
    "inference": 4, "bench": 4,
    "cli": 5, "__main__": 5,
}


def _modules() -> dict[str, Path]:
    """`wam_pipe.x.y` -> file, for every `.py` file under the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imported(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a `wam_pipe` module in `path`, at any depth."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            found.append((node.lineno, target))
            # `from wam_pipe import stages` / `from wam_pipe.data import shards`: the names may be modules
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names
                      if f"{target}.{alias.name}" in MODULES]
    return [(line, name) for line, name in found if name == "wam_pipe" or name.startswith("wam_pipe.")]


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _package_edges() -> dict[tuple[str, str], str]:
    """(importer package, imported package) -> one `file:line` where it happens."""
    edges = {}
    for module, path in MODULES.items():
        source = _package(module)
        for line, name in _imported(module, path):
            target = _package(name)
            if source and target and source != target:
                edges.setdefault((source, target), f"{path.relative_to(ROOT.parent)}:{line}")
    return edges


def test_the_module_list_comes_from_the_package():
    assert len(MODULES) > 50 and "wam_pipe.core.errors" in MODULES and "wam_pipe.stages.slots" in MODULES


def test_every_package_has_a_layer():
    packages = {_package(m) for m in MODULES} - {None}
    assert not packages - set(LAYERS), f"give these packages a layer in tests/test_layers.py: {packages - set(LAYERS)}"


def test_no_package_imports_a_higher_layer():
    upward = [f"{where}: {a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})"
              for (a, b), where in sorted(_package_edges().items()) if LAYERS[a] < LAYERS[b]]
    assert not upward, "\n".join(upward)


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected groups of more than one package (Tarjan)."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_packages_form_no_cycle():
    edges = _package_edges()
    cycles = _cycles(set(edges))
    detail = [f"{' <-> '.join(c)}: " + ", ".join(f"{a}->{b} at {w}" for (a, b), w in edges.items()
                                                 if a in c and b in c) for c in cycles]
    assert not cycles, "\n".join(detail)


def test_the_cycle_finder_finds_cycles():
    assert _cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
    assert _cycles({("a", "b"), ("b", "c")}) == []


def test_no_two_modules_import_each_other():
    """Module-level cycles (e.g. `config/pipeline_file.py` <-> `config/validate.py`), imports at any depth."""
    imports = {module: {name for _, name in _imported(module, path)} for module, path in MODULES.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, names in imports.items() for b in names
                    if b != a and b in imports and a in imports[b]})
    assert not pairs, f"modules that import each other: {pairs}"
