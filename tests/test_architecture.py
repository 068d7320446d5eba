"""The layers hold: imports only go down (cli/serve -> pipelines -> core), no cycle between files or
between packages, and nobody reads another module's fitted (``name_``) state.

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


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted module name of a project file (``recsys/blocks/__init__.py`` -> ``recsys.blocks``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file for every module of the importable packages."""
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def imported_names(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """Absolute dotted names each import statement in a file asks for (``from a import b`` gives ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path, root)
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


def import_graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """module -> {imported project module: first line}; a module importing a name of its own package's
    ``__init__`` that is really a submodule resolves to the submodule."""
    modules = project_modules(root)
    graph: dict[str, dict[str, int]] = {}
    for mod, path in modules.items():
        edges: dict[str, int] = {}
        for name, line in imported_names(path, root):
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


def unit(mod: str) -> str:
    """The package or top-level module a module belongs to (``recsys.genres.oof`` -> ``recsys.genres``)."""
    return ".".join(mod.split(".")[:2])


def unit_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The import graph between packages and top-level modules (``recsys.catalog``, ``recsys.genres``).

    The root ``recsys/__init__.py`` (lazy re-exports for users) is left out: it is nobody's dependency.
    """
    out: dict[str, dict[str, int]] = {}
    for mod, edges in graph.items():
        if "." not in mod:
            continue
        for target in edges:
            if "." in target and unit(target) != unit(mod):
                out.setdefault(unit(mod), {}).setdefault(unit(target), 0)
        out.setdefault(unit(mod), {})
    return out


def layer(mod: str) -> str:
    """``face`` (CLI, HTTP server), ``pipelines`` or ``core``."""
    if any(mod == f or mod.startswith(f + ".") for f in FACES):
        return "face"
    return "pipelines" if mod.split(".")[0] == "pipelines" else "core"


def test_no_cycle_between_files():
    found = cycles(import_graph())
    assert not found, "import cycles between files: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_cycle_between_packages():
    """``recsys.catalog`` importing ``recsys.genres`` while a genres module imports catalog is a cycle of
    packages even when no two files import each other."""
    graph = import_graph()
    found = cycles(unit_graph(graph))
    why = []
    for comp in found:
        why += [f"{m} -> {t} (line {line})" for m, edges in graph.items() for t, line in edges.items()
                if "." in m and unit(m) in comp and unit(t) in comp and unit(t) != unit(m)]
    assert not found, ("import cycles between packages: " + "; ".join(" <-> ".join(c) for c in found)
                       + "\n" + "\n".join(why))


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


# ------------------------------------------------------------------ fitted state stays in its module
#: Fitted-attribute names that scikit-learn and LightGBM estimators carry too (``LabelEncoder.classes_``,
#: ``StandardScaler.mean_``, ``LGBMClassifier.booster_``): read by name alone, a read of theirs cannot be
#: told from a read of ours, so these names are not checked.
THIRD_PARTY_FITTED = {"classes_", "n_classes_", "vocabulary_", "idf_", "mean_", "scale_", "booster_",
                      "components_"}


def _fitted(name: str) -> bool:
    return name.endswith("_") and not name.endswith("__") and not name.startswith("_")


def fitted_owners(files: list[Path]) -> dict[str, set[Path]]:
    """``name_`` -> the files that set it on ``self`` (or define it as a property) in one of their classes."""
    owners: dict[str, set[Path]] = {}
    for p in files:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _fitted(node.attr) \
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                owners.setdefault(node.attr, set()).add(p)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _fitted(node.name):
                owners.setdefault(node.name, set()).add(p)
    return owners


def foreign_state_reads(files: list[Path], owners: dict[str, set[Path]], root: Path = ROOT) -> list[str]:
    """``file:line: obj.name_`` wherever a file touches a ``name_`` that only other files set."""
    bad = []
    for p in files:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Attribute) and node.attr in owners
                    and node.attr not in THIRD_PARTY_FITTED and p not in owners[node.attr]):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            whose = ", ".join(sorted(str(o.relative_to(root)) for o in owners[node.attr]))
            bad.append(f"{p.relative_to(root)}:{node.lineno}: .{node.attr} (fitted state of {whose})")
    return sorted(set(bad))


def _files(root: Path, folders) -> list[Path]:
    return [p for d in folders for p in sorted((root / d).rglob("*.py"))]


def test_no_reads_of_another_modules_fitted_state():
    """Library, pipelines and scripts go through public accessors (``eng.tracks``, ``index.clusters``)."""
    files = _files(ROOT, ("recsys", "pipelines", "scripts"))
    bad = foreign_state_reads(files, fitted_owners(files))
    assert not bad, "fitted state read from outside its module:\n" + "\n".join(bad)


def test_no_reads_of_the_engines_fitted_state_anywhere():
    """Not even tests read the Engine's parts (``tracks_``, ``embedded_`` ...): its public surface is enough.

    (Tests of an estimator may look at that estimator's own fitted state.)"""
    engine = ROOT / "recsys" / "engine.py"
    owners = fitted_owners(_files(ROOT, ("recsys", "pipelines")))
    owners = {k: v for k, v in owners.items() if engine in v}  # index_ is TrackIndex's too: index.py may
    bad = foreign_state_reads(_files(ROOT, ("recsys", "pipelines", "scripts", "tests")), owners)
    assert not bad, "Engine state read from outside recsys/engine.py:\n" + "\n".join(bad)


def test_checks_see_a_planted_package_cycle_and_a_foreign_state_read(tmp_path):
    """In a small tree: two packages that import each other only through different files, and a module
    reading another module's fitted state, are both caught (and the owner's own reads are not)."""
    def write(rel: str, text: str) -> None:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)

    write("recsys/__init__.py", "")
    write("recsys/catalog.py", "from .genres.taxonomy import PARENTS\n")
    write("recsys/genres/__init__.py", "")
    write("recsys/genres/taxonomy.py", "PARENTS = ()\n")
    write("recsys/genres/tabular.py", "from ..catalog import load\n")
    write("recsys/model.py", "class M:\n    def fit(self):\n        self.state_ = 1\n"
                             "        return self.state_\n")
    write("recsys/user.py", "from .model import M\n\ndef f():\n    return M().fit() + M().state_\n")
    write("pipelines/__init__.py", "")
    graph = import_graph(tmp_path)
    assert not cycles(graph)  # no two files import each other ...
    assert cycles(unit_graph(graph)) == [["recsys.catalog", "recsys.genres"]]  # ... but the packages do
    files = _files(tmp_path, ("recsys",))
    assert foreign_state_reads(files, fitted_owners(files), tmp_path) == [
        "recsys/user.py:4: .state_ (fitted state of recsys/model.py)"]
