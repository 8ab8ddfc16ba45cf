"""The top-level package: every public name resolves, and `import seqlens` loads neither torch nor pandas; the
subpackages import their modules on first use, so that their light modules stay light."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import seqlens
from seqlens._lazy import declared_names


def test_every_public_name_resolves():
    for name in seqlens.__all__:
        assert getattr(seqlens, name) is not None, name
    assert seqlens.load is seqlens.recommenders.load_model  # subpackages stay reachable as attributes


def test_importing_the_package_loads_no_heavy_dependency():
    code = "import sys, seqlens; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


#: the subpackages whose names are imported on first use (seqlens/_lazy.py)
LAZY = ("seqlens.data", "seqlens.nn", "seqlens.train", "seqlens.recommenders", "seqlens.explain")
#: what `seqlens train --help` and the other commands' --help read: declarations and names
LIGHT = (
    "seqlens.nn.config", "seqlens.train.config", "seqlens.recommenders.registry", "seqlens.data.datasets",
    "seqlens.explain.methods",
)  # fmt: skip


@pytest.mark.parametrize("package", LAZY)
def test_a_subpackage_names_what_type_checkers_see_and_imports_it_on_first_use(package):
    module = importlib.import_module(package)
    declared = declared_names(Path(module.__file__))  # its imports under TYPE_CHECKING
    assert sorted(declared) == sorted(module.__all__)
    for name, (where, attribute) in declared.items():
        assert getattr(module, name) is getattr(importlib.import_module(where), attribute), name
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_the_declarations_load_no_heavy_dependency():
    code = f"import sys; import {', '.join(LIGHT)}; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
