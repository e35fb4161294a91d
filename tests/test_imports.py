"""The package's layout, checked from its source: no import cycles among the modules of
src/fastconv, and no module below the package root imports the root package.

The graph comes from every import statement of every module (ast; function-local imports
included, since they run too): `from . import x` of a submodule is an edge to that submodule,
otherwise to the package the name is taken from; the compiled `_core` / `_cuda` are leaves.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "fastconv"
COMPILED = {"_core", "_cuda"}


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package is its __init__)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(module: str, path: Path, modules: dict[str, Path]):
    """(imported module of the package, is_root_import, line) for each import statement of `module`.
    A root import names the package absolutely (`import fastconv`, `from fastconv... import`) or
    takes a name from the root that is not a submodule (`from . import conv2d` at the top level)."""
    root = module.split(".")[0]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == root or alias.name.startswith(root + "."):
                    yield alias.name if alias.name in modules else root, module != root, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + (node.module.split(".") if node.module else []))
                absolute = False
            else:
                target, absolute = node.module or "", True
                if not (target == root or target.startswith(root + ".")):
                    continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    yield sub, absolute and module != root, node.lineno
                elif alias.name not in COMPILED and target in modules:
                    yield target, module != root and (absolute or target == root), node.lineno


def import_graph(package_dir: Path) -> tuple[dict[str, set[str]], dict[str, list[int]]]:
    """(module -> the package's modules it imports, module below the root -> lines importing the root)."""
    modules = module_files(package_dir)
    graph, root_imports = {m: set() for m in modules}, {}
    for module, path in modules.items():
        for target, is_root_import, line in _imports(module, path, modules):
            if target != module:
                graph[module].add(target)
            if is_root_import:
                root_imports.setdefault(module, []).append(line)
    return graph, root_imports


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def describe(graph, components) -> str:
    lines = []
    for component in components:
        lines.append(f"cycle among {len(component)} modules:")
        lines += [f"    {m} -> {sorted(t for t in graph[m] if t in component)}" for m in component]
    return "\n".join(lines)


def test_no_import_cycles():
    graph, _ = import_graph(PACKAGE_DIR)
    found = cycles(graph)
    assert not found, "import cycles in src/fastconv:\n" + describe(graph, found)


def test_no_module_below_the_root_imports_the_package():
    _, root_imports = import_graph(PACKAGE_DIR)
    assert not root_imports, "modules below the root that import fastconv itself (module: lines): " + \
        ", ".join(f"{m}: {lines}" for m, lines in sorted(root_imports.items()))


# ---- the checks themselves, on a synthetic package ---------------------------------------------------


def _package(tmp_path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_checks_find_a_cycle_and_root_imports(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "from . import _core, ops\nfrom .ops import op\ndef helper(): pass\n",
        "ops.py": "from . import _core\ndef op():\n    from .sub import Layer  # function-local: counted\n",
        "sub/__init__.py": "from .layer import Layer\n",
        "sub/layer.py": "from ..ops import op\nclass Layer: pass\n",
        "sub/clean.py": "from .. import ops\nfrom ..sub import layer\n",
        "sub/bad1.py": "import pkg\n",
        "sub/bad2.py": "from .. import helper\n",
        "sub/bad3.py": "from pkg.ops import op\n",
    })
    graph, root_imports = import_graph(root)
    assert graph["pkg"] == {"pkg.ops"} and graph["pkg.ops"] == {"pkg.sub"}
    assert graph["pkg.sub"] == {"pkg.sub.layer"} and graph["pkg.sub.layer"] == {"pkg.ops"}
    assert graph["pkg.sub.clean"] == {"pkg.ops", "pkg.sub.layer"}
    assert cycles(graph) == [["pkg.ops", "pkg.sub", "pkg.sub.layer"]]
    assert "pkg.sub.layer -> ['pkg.ops']" in describe(graph, cycles(graph))
    assert root_imports == {"pkg.sub.bad1": [1], "pkg.sub.bad2": [1], "pkg.sub.bad3": [1]}
    graph["pkg.ops"].clear()  # the function-local import gone: no cycle left
    assert cycles(graph) == []


def test_benchmarks_are_drivers_over_the_package():
    """benchmarks/*.py import what they share from fastconv.bench, not from tests/ or each other
    through sys.path."""
    scripts = sorted((PACKAGE_DIR.parents[1] / "benchmarks").glob("*.py"))
    assert scripts
    siblings = {p.stem for p in scripts} | {p.stem for p in (PACKAGE_DIR.parents[1] / "tests").glob("*.py")}
    offenders = []
    for path in scripts:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in {"insert", "append", "extend"} \
                    and ast.unparse(node.value) == "sys.path":
                offenders.append(f"{path.name}:{node.lineno} edits sys.path")
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in siblings]
    assert not offenders, offenders


def test_the_toolbox_keeps_its_old_names():
    import importlib

    import fastconv
    import fastconv.toolbox.filters
    import fastconv.toolbox.viz

    assert fastconv.filters is fastconv.toolbox.filters
    assert importlib.import_module("fastconv.viz") is fastconv.toolbox.viz
    from fastconv.viz import plot_history  # noqa: F401  (the old spelling of an import)
