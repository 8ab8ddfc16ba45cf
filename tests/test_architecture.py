"""The layers of docs/architecture.md hold in the code: no module imports a package above its own.

Every import counts: at module level, inside functions (a lazy import is still a dependency), and under
`TYPE_CHECKING`. `import seqlens` counts as the packages whose names the module then reads from it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import seqlens

SRC = Path(seqlens.__file__).parent
ROOT = SRC.parents[1]

#: lowest first; a module may import its own layer and the ones before it. The top-level `seqlens/__init__.py`
#: (the facade that names everything on first use) sits above them all.
LAYERS = (
    ("_version", "errors", "atomic", "params"),
    ("data",),
    ("nn",),
    ("train",),
    ("eval",),
    ("recommenders",),
    ("explain",),
    ("monitor",),
    ("serve",),
    ("cli",),
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
