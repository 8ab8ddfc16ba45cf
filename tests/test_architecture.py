"""The layers of docs/architecture.md hold in the code: no module imports a package above its own, and no
module imports one that imports it (no cycle, within a package too).

Every import counts: at module level, inside functions (a lazy import is still a dependency), and under
`TYPE_CHECKING`. `import seqlens` counts as the packages whose names the module then reads from it.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import seqlens

SRC = Path(seqlens.__file__).parent
ROOT = SRC.parents[1]

#: lowest first; a module may import its own layer and the ones before it. The top-level `seqlens/__init__.py`
#: (the facade that names everything on first use) sits above them all.
LAYERS = (
    ("_version", "_lazy", "errors", "atomic", "params"),
    ("data",),
    ("nn",),
    ("train",),
    ("eval",),
    ("recommenders",),
    ("explain",),
    ("monitor",),
    ("serve",),
    ("cli", "__main__"),  # `python -m seqlens` is the command line
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}


def package_of(dotted: str) -> str | None:
    """The layer name of an import target (`seqlens.explain.report` -> explain), None outside seqlens."""
    parts = dotted.split(".")
    if parts[0] != "seqlens":
        return None
    if len(parts) == 1:
        return "_version"  # the bare facade; what is read from it is resolved by `_facade_names`
    name = parts[1]
    if name in RANK:
        return name
    if name in seqlens._LAZY:  # `from seqlens import SASRec`
        return package_of(seqlens._LAZY[name][0])
    raise AssertionError(f"seqlens.{name} is in no layer: add it to LAYERS")


def _facade_names(tree: ast.AST) -> list[tuple[int, str]]:
    """`seqlens.NAME` read in a module that did `import seqlens`: (line, the module NAME comes from)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "seqlens":
            if node.attr in seqlens._LAZY:
                found.append((node.lineno, seqlens._LAZY[node.attr][0]))
            elif not node.attr.startswith("__"):
                found.append((node.lineno, f"seqlens.{node.attr}"))
    return found


def upward_imports(package: str, source: str) -> list[str]:
    """`line: target` for every import in `source` (a module of `package`) of a package above it."""
    tree = ast.parse(source)
    targets: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"line {node.lineno}: relative import; seqlens imports absolutely"
            module = node.module or ""
            targets += [
                (node.lineno, f"{module}.{alias.name}" if module == "seqlens" else module) for alias in node.names
            ]
    if any(target == "seqlens" for _, target in targets):
        targets += _facade_names(tree)
    return [
        f"{line}: {target}"
        for line, target in targets
        if (above := package_of(target)) is not None and RANK[above] > RANK[package]
    ]


def modules() -> list:
    """Every module but the facade, with the package (or top-level module) it belongs to."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).parts
        if parts != ("__init__.py",):
            out.append(pytest.param(parts[0] if len(parts) > 1 else path.stem, path, id="/".join(parts)))
    return out


@pytest.mark.parametrize("package, path", modules())
def test_no_module_imports_a_layer_above_its_own(package, path):
    assert package in RANK, f"{path.relative_to(SRC)}: package {package!r} is in no layer: add it to LAYERS"
    assert upward_imports(package, path.read_text()) == [], f"{path.relative_to(SRC)} imports a layer above {package}"


def test_a_lazy_import_counts():
    lazy = """
class SASRec:
    def explain(self, query=None, **options):
        from seqlens.explain import explain

        return explain(self, query, **options)
"""
    assert upward_imports("recommenders", lazy) == ["4: seqlens.explain"]
    assert upward_imports("recommenders", "import seqlens\nseqlens.explain.explain(model)\n") == ["2: seqlens.explain"]
    assert upward_imports("eval", "from seqlens import SASRec\n") == ["1: seqlens.SASRec"]
    assert upward_imports("explain", "import seqlens\nprint(seqlens.__version__, seqlens.SASRec)\n") == []


def test_the_documented_diagram_is_the_order_of_the_layers():
    flow = " ──> ".join(layer[0] for layer in LAYERS[1:] if layer[0] not in ("serve", "cli"))
    assert flow in (ROOT / "docs" / "architecture.md").read_text(), flow


# --- import cycles ------------------------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


#: every module of the package by dotted name (a package by its `__init__.py`)
MODULES = {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _facade_imports() -> dict[str, str]:
    """What the facade imports itself (`__version__`, the errors): name -> the module it comes from."""
    tree = ast.parse((SRC / "__init__.py").read_text())
    return {
        a.asname or a.name: n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module for a in n.names
    }


def _module_of(dotted: str) -> str:
    while dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted


def _target(module: str, name: str) -> str:
    """The module `from module import name` depends on: the submodule `name` if there is one, else `module`, and
    for a name read from the facade, the module it comes from."""
    if f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    if module == "seqlens":
        return seqlens._LAZY[name][0] if name in seqlens._LAZY else _facade_imports()[name]
    return module


def _under_type_checking(tree: ast.AST) -> set[ast.AST]:
    return {
        inner
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }


def imported_modules(source: str) -> dict[str, tuple[int, bool]]:
    """The seqlens modules that `source` imports anywhere (module level, in functions, under TYPE_CHECKING):
    module -> (line of its first import, whether every import of it is type-only)."""
    tree = ast.parse(source)
    type_only = _under_type_checking(tree)
    found: dict[str, tuple[int, bool]] = {}

    def add(line: int, module: str, typing_only: bool) -> None:
        first, was_typing_only = found.get(module, (line, True))
        found[module] = (min(first, line), was_typing_only and typing_only)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("seqlens."):
                    add(node.lineno, _module_of(alias.name), node in type_only)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "seqlens":
            for alias in node.names:
                add(node.lineno, _target(node.module, alias.name), node in type_only)
    if any(isinstance(n, ast.Import) and any(a.name == "seqlens" for a in n.names) for n in ast.walk(tree)):
        for line, dotted in _facade_names(tree):  # `import seqlens`, then `seqlens.NAME`
            add(line, _module_of(dotted), False)
    return found


def import_graph() -> dict[str, dict[str, tuple[int, bool]]]:
    return {name: imported_modules(path.read_text()) for name, path in MODULES.items()}


def cycles(graph: dict[str, dict[str, tuple[int, bool]]]) -> list[list[str]]:
    """Import cycles of `graph` (module -> the modules it imports), each as [a, b, ..., a] with every module
    importing the next; one per run of graphlib, whose first import is then dropped to look for the next."""
    edges = {module: set(imports) for module, imports in graph.items()}
    found = []
    while True:
        try:
            graphlib.TopologicalSorter(edges).prepare()
            return found
        except graphlib.CycleError as e:
            cycle = e.args[1][::-1]  # graphlib lists each module before the one importing it
            found.append(cycle)
            edges[cycle[0]].discard(cycle[1])


#: the type-only imports that may close a cycle (importer, imported), each with the reason it must
TYPE_ONLY_BACK_IMPORTS = {
    ("seqlens.recommenders.artifacts", "seqlens.recommenders.base"): (
        "load_model returns a Recommender, whose save() writes through artifacts: the module that writes and "
        "reads the model directory has to name the class it rebuilds (everything else of it comes from the "
        "registry at run time)"
    ),
}


def test_no_import_cycles():
    """No module imports, directly or through others, a module that imports it: every module can be read (and
    imported) after the ones it uses. Imports inside functions count (they run as soon as the function does),
    and so do type-only imports under TYPE_CHECKING: such a cycle runs nothing, but it still ties two modules
    together, and it becomes a real one as soon as an annotation is evaluated (`typing.get_type_hints`, as
    `params.Schema` does on the config classes). The exceptions are listed, with their reasons, in
    TYPE_ONLY_BACK_IMPORTS, and must stay type-only."""
    graph = import_graph()
    for (importer, imported), reason in TYPE_ONLY_BACK_IMPORTS.items():
        assert graph[importer].pop(imported)[1], f"{importer} must import {imported} for types only: {reason}"
    found = [
        " -> ".join(f"{a} (line {graph[a][b][0]}{', type only' if graph[a][b][1] else ''})" for a, b in zip(c, c[1:]))
        + f" -> {c[-1]}"
        for c in cycles(graph)
    ]
    assert found == [], "import cycles:\n" + "\n".join(found)


def test_a_cycle_is_found_whatever_its_length():
    graph = {"a": {"b": (1, False)}, "b": {"c": (1, True)}, "c": {"a": (1, False)}, "d": {"a": (1, False)}}
    assert [sorted(c[:-1]) for c in cycles(graph)] == [["a", "b", "c"]]
    assert cycles({"a": {"b": (1, False)}, "b": {}}) == []


def test_every_kind_of_import_is_an_edge():
    lazy = "def save(self, path):\n    from seqlens.recommenders.artifacts import save_model\n"
    assert imported_modules(lazy) == {"seqlens.recommenders.artifacts": (2, False)}
    typed = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from seqlens.nn.sasrec import SASRecNet\n"
    assert imported_modules(typed) == {"seqlens.nn.sasrec": (3, True)}
    assert imported_modules("from seqlens.serve import explaining\nimport seqlens.data.log\n") == {
        "seqlens.serve.explaining": (1, False),
        "seqlens.data.log": (2, False),
    }
    facade = "import seqlens\nfrom seqlens import SASRec, __version__\nseqlens.explain.explain(model)\n"
    assert imported_modules(facade) == {
        "seqlens.recommenders": (2, False),
        "seqlens._version": (2, False),
        "seqlens.explain": (3, False),
    }
