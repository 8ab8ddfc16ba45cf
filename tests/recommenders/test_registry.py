"""The recommender registry: every class by name (what loading rebuilds), and the neural ones known without torch."""

from seqlens.recommenders import GRU4Rec, Popular, Recommender, SASRec
from seqlens.recommenders.neural import NextItemModel
from seqlens.recommenders.registry import MODELS, NEURAL


def test_every_class_is_registered_under_its_name():
    assert Recommender.registry is MODELS
    assert MODELS["SASRec"] is SASRec and MODELS["GRU4Rec"] is GRU4Rec and MODELS["Popular"] is Popular


def test_the_neural_list_is_the_library_s_neural_models_with_their_schemas():
    library = {
        name for name, cls in MODELS.items()
        if issubclass(cls, NextItemModel) and "schema" in vars(cls) and cls.__module__.startswith("seqlens.")
    }  # fmt: skip
    assert library == set(NEURAL)
    for name, model in NEURAL.items():
        cls = model.import_class()
        assert cls.__name__ == name and cls.__module__ == model.module and cls.schema is model.schema
