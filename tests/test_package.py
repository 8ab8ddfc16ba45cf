"""The top-level package: every public name resolves, and `import seqlens` loads neither torch nor pandas."""

from __future__ import annotations

import subprocess
import sys

import seqlens


def test_every_public_name_resolves():
    for name in seqlens.__all__:
        assert getattr(seqlens, name) is not None, name
    assert seqlens.load is seqlens.recommenders.load_model  # subpackages stay reachable as attributes


def test_importing_the_package_loads_no_heavy_dependency():
    code = "import sys, seqlens; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
