"""One declaration per hyper-parameter: the estimator, its docs, validation, TOML and CLI all come from it."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from seqlens import GRU4Rec, SASRec
from seqlens.cli.config import ModelConfig
from seqlens.cli.main import app
from seqlens.errors import DataError
from seqlens.params import Schema, param


@dataclass
class Toy:
    n_items: int  # no doc: not a hyper-parameter
    width: int = param(8, "How wide.", minimum=1)
    mode: str = param("a", "Which mode.", choices=("a", "b"))
    ratio: float = param(0.5, "A share.", minimum=0.0, legacy=0.25)
    layers: list[int] | None = param(None, "Which layers.")

    @classmethod
    def check(cls, p: dict) -> None:
        if p["ratio"] >= 1:
            raise ValueError(f"ratio={p['ratio']} must be below 1")


def test_one_declaration_gives_signature_docs_defaults_and_legacy_values():
    schema = Schema(Toy, defaults={"width": 16})
    assert list(schema.specs) == ["width", "mode", "ratio", "layers"]
    assert schema.defaults == {"width": 16, "mode": "a", "ratio": 0.5, "layers": None}
    assert schema.legacy_defaults()["ratio"] == 0.25 and schema.legacy_defaults()["width"] == 16
    signature = schema.signature()
    assert signature.parameters["width"].default == 16
    assert signature.parameters["mode"].kind is inspect.Parameter.KEYWORD_ONLY
    doc = schema.docstring()
    assert "mode : {'a', 'b'}, default 'a'" in doc and "Which layers." in doc


@pytest.mark.parametrize(
    "params, named",
    [({"width": 0}, "width"), ({"width": True}, "width"), ({"mode": "c"}, "mode"), ({"ratio": "x"}, "ratio"),
     ({"ratio": 1.5}, "ratio"), ({"layers": [1, "x"]}, "layers"), ({"depth": 2}, "depth")],
)  # fmt: skip
def test_validation_names_the_parameter(params, named):
    with pytest.raises(DataError, match=named):
        Schema(Toy).validate(params)


def test_an_integer_is_a_valid_float():
    Schema(Toy).validate({"ratio": 0})


def test_every_estimator_parameter_is_declared_documented_and_a_flag():
    flags = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"}).output
    for cls in (SASRec, GRU4Rec):
        specs = cls.schema.specs
        assert list(inspect.signature(cls).parameters) == list(specs)
        assert cls().get_params() == cls.schema.defaults
        for name, spec in specs.items():
            assert spec.doc and f"{name} :" in (cls.__doc__ or "")
            assert name in ModelConfig.model_fields
            assert "--" + name.replace("_", "-") in flags


def test_clone_round_trip_and_keyword_only():
    model = SASRec(dim=32, refine_layers=[-1], progress=False)
    clone = type(model)(**model.get_params())
    assert clone.get_params() == model.get_params()
    with pytest.raises(TypeError):
        SASRec(50)  # type: ignore[misc]
    with pytest.raises(TypeError, match="colour"):
        SASRec(colour="red")  # type: ignore[call-arg]


def test_adding_a_hyper_parameter_is_one_declaration(tmp_path):
    """A model with one more `param` field: constructor, docs, validation and the artifact round trip
    (including an artifact saved before the parameter existed) follow from that field alone."""
    import json

    import seqlens
    from seqlens.nn.sasrec import SASRecConfig, SASRecNet
    from seqlens.train.trainer import TrainConfig

    @dataclass
    class TemperedConfig(SASRecConfig):
        temperature: float = param(2.0, "Divides the scores.", minimum=0.0, legacy=1.0)

    class Tempered(SASRec):
        schema = Schema(TemperedConfig, TrainConfig)

        def _build_net(self) -> SASRecNet:
            return SASRecNet(TemperedConfig(n_items=self.n_items_, **self._config(TemperedConfig)))

    model = Tempered(temperature=3.0, dim=8, max_len=10, epochs=1, progress=False)
    assert model.get_params()["temperature"] == 3.0 and "temperature : float, default 2.0" in (Tempered.__doc__ or "")
    with pytest.raises(DataError, match="temperature"):
        Tempered(temperature=-1.0, epochs=1).fit(seqlens.synthetic_log(n_users=20, seed=0))
    with pytest.raises(DataError, match="temperature"):
        TemperedConfig(n_items=5, temperature="hot")  # type: ignore[arg-type]
    model.fit(seqlens.synthetic_log(n_users=30, seed=0))
    model.save(tmp_path / "m")
    again = seqlens.load(tmp_path / "m")
    assert isinstance(again, Tempered) and again.get_params() == model.get_params()
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["params"]["temperature"]  # as saved before the parameter existed
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert seqlens.load(tmp_path / "m").get_params()["temperature"] == 1.0  # its legacy value
