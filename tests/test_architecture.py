"""The layers hold: imports only go down (cli/serve -> pipelines -> core), no cycle between files.

Every import statement of every project file is read (module level and inside functions), resolved
to a project file, and checked. See docs/architecture.md for the picture these rules protect.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("recsys", "pipelines")
FACES = ("recsys.cli", "recsys.serve", "recsys.__main__")  # __main__: `python -m recsys`, the CLI


def module_name(path: Path) -> str:
    """Dotted module name of a project file (``recsys/blocks/__init__.py`` -> ``recsys.blocks``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the importable packages."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(path: Path) -> list[tuple[str, int]]:
    """Absolute dotted names each import statement in a file asks for (``from a import b`` gives ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
            out.append((mod, node.lineno))
    return out


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module a dotted name refers to (``recsys.io.write_json`` -> ``recsys.io``)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in modules:
            return cand
    return None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: first line}; a module importing a name of its own package's
    ``__init__`` that is really a submodule resolves to the submodule."""
    modules = project_modules()
    graph: dict[str, dict[str, int]] = {}
    for mod, path in modules.items():
        edges: dict[str, int] = {}
        for name, line in imported_names(path):
            target = resolve(name, modules)
            if target is not None and target != mod:
                edges.setdefault(target, line)
        graph[mod] = edges
    # `from pkg import sub` also yields the bare `pkg`; keep the submodule edge only
    for mod, edges in graph.items():
        for target in list(edges):
            if any(t.startswith(target + ".") for t in edges) and modules[target].name == "__init__.py":
                del edges[target]
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer(mod: str) -> str:
    """``face`` (CLI, HTTP server), ``pipelines`` or ``core``."""
    if any(mod == f or mod.startswith(f + ".") for f in FACES):
        return "face"
    return "pipelines" if mod.split(".")[0] == "pipelines" else "core"


def test_no_cycle_between_files():
    found = cycles(import_graph())
    assert not found, "import cycles between files: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_only_go_down():
    rank = {"core": 0, "pipelines": 1, "face": 2}
    bad = [f"{m} ({layer(m)}) imports {t} ({layer(t)}) at line {line}"
           for m, edges in import_graph().items() for t, line in edges.items()
           if rank[layer(t)] > rank[layer(m)]]
    assert not bad, "imports that go up a layer:\n" + "\n".join(bad)


def _sys_path_edits(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                and node.value.id == "sys":
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("folder", ["scripts", "tests", "recsys", "pipelines"])
def test_no_sys_path_edits_or_sibling_imports(folder):
    """Scripts and tests import installed packages.

    No sys.path edits, no importing each other by file name.
    """
    files = sorted((ROOT / folder).rglob("*.py"))
    siblings = {p.stem for d in ("scripts", "tests") for p in (ROOT / d).glob("*.py")} - {"conftest"}
    bad = []
    for p in files:
        bad += [f"{p.relative_to(ROOT)}:{line}: uses sys.path" for line in _sys_path_edits(p)]
        for name, line in imported_names(p):
            if name.split(".")[0] in siblings and name.split(".")[0] != p.stem:
                bad.append(f"{p.relative_to(ROOT)}:{line}: imports sibling file {name.split('.')[0]}")
    assert not sorted(set(bad)), "\n".join(sorted(set(bad)))


def test_checker_sees_a_planted_cycle_and_an_upward_import():
    """The rules above can fail: a graph with a cycle and a core -> cli edge is caught."""
    graph = {"recsys.a": {"recsys.b": 1}, "recsys.b": {"recsys.a": 2}, "recsys.c": {"recsys.cli.x": 3},
             "recsys.cli.x": {}}
    assert cycles(graph) == [["recsys.a", "recsys.b"]]
    assert (layer("recsys.c") == "core" and layer("recsys.cli.x") == "face"
            and layer("pipelines.p") == "pipelines")
