"""Packages that import their modules on first use (PEP 562), as the top-level `seqlens` does.

Python runs a package's `__init__` before any of its modules, so an `__init__` that imports its modules makes
every one of them as heavy as the heaviest: reading the torch-free hyper-parameter declarations in
`seqlens.nn.config` (which `seqlens train --help` makes its flags from) would load torch through
`nn/attention.py`. Such a package imports its public names under TYPE_CHECKING only (what type checkers and
IDEs read) and ends with

    __getattr__, __dir__ = lazy_names(__name__)

which reads those import lines from the package's source: a name is imported from its module the first time
it is used (`from seqlens.nn import SASRecNet` works as before), and so is a submodule read as an attribute
(`seqlens.nn.sasrec`).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def lazy_names(package: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module `__getattr__` and `__dir__` of `package`, whose names are imported on first use."""
    namespace = vars(sys.modules[package])
    init = Path(namespace["__file__"])
    where = declared_names(init)
    for name, (module, attribute) in where.items():
        # A name that is also a module's (explain's `narrative`, of narrative.py) is bound now, as an eager
        # `__init__` binds it: importing that module later would set the package's attribute to the module.
        if (init.parent / f"{name}.py").exists():
            namespace[name] = getattr(importlib.import_module(module), attribute)

    def __getattr__(name: str) -> Any:
        if name in where:
            module, attribute = where[name]
            value = getattr(importlib.import_module(module), attribute)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__


def declared_names(init: Path) -> dict[str, tuple[str, str]]:
    """name -> (module, name there) of every `from module import name` under `if TYPE_CHECKING:` in `init`."""
    tree = ast.parse(init.read_text(encoding="utf-8"))
    return {
        alias.asname or alias.name: (node.module, alias.name)
        for statement in tree.body
        if isinstance(statement, ast.If) and ast.unparse(statement.test) == "TYPE_CHECKING"
        for node in statement.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
