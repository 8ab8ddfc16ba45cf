"""The recommender registry: every class by name (what loading rebuilds), the library's own, the neural schemas."""

import subprocess
import sys
from pathlib import Path

import pytest

from seqlens.recommenders import GRU4Rec, Popular, Recommender, SASRec
from seqlens.recommenders.neural import NextItemModel
from seqlens.recommenders.registry import LIBRARY, MODELS, SCHEMAS, model_class

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_every_class_is_registered_under_its_name():
    assert Recommender.registry is MODELS
    assert MODELS["SASRec"] is SASRec and MODELS["GRU4Rec"] is GRU4Rec and MODELS["Popular"] is Popular


def test_the_library_list_is_the_library_s_classes_and_the_schemas_are_theirs():
    assert {name: (model_class(name).__name__, model_class(name).__module__) for name in LIBRARY} == {
        name: (name, module) for name, module in LIBRARY.items()
    }
    library = {name: cls for name, cls in MODELS.items() if cls.__module__.startswith("seqlens.")}
    assert set(library) - set(LIBRARY) == {"NextItemModel"}  # the one abstract class
    neural = {name for name, cls in library.items() if issubclass(cls, NextItemModel) and "schema" in vars(cls)}
    assert neural == set(SCHEMAS)
    assert all(model_class(name).schema is schema for name, schema in SCHEMAS.items())
    with pytest.raises(KeyError):
        model_class("Nothing")


def test_a_saved_model_loads_with_nothing_imported_before():
    """`seqlens.load` imports the class the model directory names (importing the package defines none)."""
    model = next(FIXTURES.glob("models-*")) / "sasrec"
    code = f"import seqlens; print(type(seqlens.load({str(model)!r})).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "SASRec"
