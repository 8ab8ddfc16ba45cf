"""Run configuration (TOML) for `seqlens train`, validated with pydantic so a typo names its key.

Example `run.toml`:

    [data]
    path = "../shared/data/beauty/Beauty_item.txt"
    timestamps = "../shared/data/beauty/Beauty_time.txt"

    [model]
    max_len = 50
    loss = "ce"

    [run]
    out = "runs/beauty"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from seqlens.errors import DataError
from seqlens.params import merged_specs, optional_model
from seqlens.recommenders.registry import SCHEMAS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    dataset: str | None = None  # a name of `seqlens.DATASETS`, read from under `root` (else $SEQLENS_DATA)
    root: str | None = None
    path: str = "synthetic"
    format: Literal["auto", "csv", "tsv", "parquet", "movielens", "sequences", "synthetic"] = "auto"
    user: str = "user_id"
    item: str = "item_id"
    time: str | None = "timestamp"
    timestamps: str | None = None
    titles: str | None = None
    kcore: int | None = None


DEFAULT_MODEL = "sasrec"
#: the models `seqlens train` builds, lower-case name -> class name: every neural recommender of the registry,
#: known there without importing it (and torch), the default first (its declarations win where models share a
#: parameter name)
TRAINABLE: dict[str, str] = dict(
    sorted(((name.lower(), name) for name in SCHEMAS), key=lambda pair: pair[0] != DEFAULT_MODEL)
)
#: every hyper-parameter of the models `seqlens train` builds, from their declarations (one flag each)
MODEL_PARAMS = merged_specs(SCHEMAS[name] for name in TRAINABLE.values())
#: the same, all optional: only those set in the file or by flags reach the model (the rest keep its defaults)
ModelConfig = optional_model("ModelConfig", MODEL_PARAMS)


class RunConfig(_Strict):
    model: str = DEFAULT_MODEL
    out: str = "runs/model"
    split: Literal["leave_one_out", "temporal"] = "leave_one_out"

    @field_validator("model")
    @classmethod
    def _trainable(cls, name: str) -> str:
        if name not in TRAINABLE:
            raise ValueError(f"unknown model; choose one of {', '.join(TRAINABLE)}")
        return name


class Config(_Strict):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()  # type: ignore[valid-type]  # a class built from the schemas
    run: RunConfig = RunConfig()


def load_config(path: str | Path | None, overrides: dict[str, dict]) -> Config:
    """Read `path` (if given), apply non-None `overrides` per section, and validate."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as e:
            raise DataError(f"{path}: invalid TOML ({e})") from None
    for section, values in overrides.items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise DataError(f"{path or 'options'}: {where}: {err['msg']} (got {err.get('input')!r})") from None
