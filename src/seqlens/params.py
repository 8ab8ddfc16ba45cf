"""Hyper-parameters declared once, on each model's config dataclass, and everything else derived from it.

A field declared with `param(default, doc, ...)` is a hyper-parameter: its type annotation, default,
allowed values (`choices`, `minimum`), documentation and the default that artifacts saved before it
existed imply (`legacy`) live there and nowhere else. From the fields, `Schema` derives the estimator's
signature and docstring, the validation that `fit` and `load` run, the optional-field pydantic model the
TOML config and the CLI flags are read through, and the defaults of old artifacts. Fields without a `doc`
(e.g. `n_items`, taken from the data) are not hyper-parameters.

Rules that tie several parameters together (`dim` divisible by `heads`) are the config class's
`check(params)` classmethod, called after every single value has passed.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

import pydantic

from seqlens.errors import DataError

_NO_LEGACY = object()


def param(
    default: Any,
    doc: str,
    *,
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    below: float | None = None,
    legacy: Any = _NO_LEGACY,
) -> Any:
    """A hyper-parameter field: `doc` says what it does and when to change it; `legacy` is the value an
    artifact saved before the parameter existed was trained with (when that differs from `default`)."""
    meta = {"doc": doc, "choices": choices, "minimum": minimum, "below": below, "legacy": legacy}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Spec:
    """One hyper-parameter as declared: name, type annotation, default and the rest of `param`'s metadata."""

    name: str
    annotation: Any
    default: Any
    doc: str
    choices: tuple[str, ...] | None
    minimum: float | None  # inclusive
    below: float | None  # exclusive upper bound
    legacy: Any

    @property
    def type_name(self) -> str:
        if self.choices:
            return "{" + ", ".join(repr(c) for c in self.choices) + "}"
        return str(self.annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")

    def pydantic_type(self) -> Any:
        """The annotation, with `choices` as a Literal so that pydantic names the allowed values."""
        if self.choices:
            choice: Any = Literal.__getitem__(self.choices)  # type: ignore[attr-defined]
            return choice | None if _allows_none(self.annotation) else choice
        return self.annotation


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


class Schema:
    """The hyper-parameters of one estimator: the fields of its config classes, in order, with per-model
    default overrides (`defaults`, e.g. a recurrent model's learning rate)."""

    def __init__(self, *configs: type, defaults: dict[str, Any] | None = None):
        self.configs = configs
        specs: dict[str, Spec] = {}
        for config in configs:
            hints = typing.get_type_hints(config)
            for f in dataclasses.fields(config):
                if "doc" not in f.metadata:
                    continue
                factory = cast("Callable[[], Any]", f.default_factory)
                default = factory() if f.default is dataclasses.MISSING else f.default
                m = f.metadata
                specs[f.name] = Spec(
                    f.name, hints[f.name], default, m["doc"], m["choices"], m["minimum"], m["below"], m["legacy"]
                )
        unknown = sorted(set(defaults or {}) - set(specs))
        if unknown:
            raise TypeError(f"defaults for undeclared parameters: {unknown}")
        for name, value in (defaults or {}).items():
            specs[name] = dataclasses.replace(specs[name], default=value)
        self.specs = specs
        self._model = pydantic.create_model(  # type: ignore[call-overload]
            "Params",
            __config__=pydantic.ConfigDict(extra="forbid", strict=True),
            **{
                s.name: (s.pydantic_type(), pydantic.Field(s.default, ge=s.minimum, lt=s.below)) for s in specs.values()
            },
        )

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: s.default for name, s in self.specs.items()}

    def legacy_defaults(self) -> dict[str, Any]:
        """What an artifact saved before a parameter existed implies for it: its `legacy` value, else its default."""
        return {n: s.default if s.legacy is _NO_LEGACY else s.legacy for n, s in self.specs.items()}

    def validate(self, params: dict[str, Any], where: str = "") -> None:
        """Raise a DataError naming the first parameter whose value is not allowed, then the config's `check`."""
        unknown = sorted(set(params) - set(self.specs))
        if unknown:
            raise DataError(f"{where}no parameter(s) {', '.join(unknown)}; known: {', '.join(self.specs)}")
        try:
            self._model.model_validate({k: float(v) if _is_float(self.specs[k], v) else v for k, v in params.items()})
        except pydantic.ValidationError as e:
            err = e.errors()[0]
            name = str(err["loc"][0])
            raise DataError(f"{where}{name}={params.get(name)!r}: {err['msg']}") from None
        for config in self.configs:
            check = getattr(config, "check", None)
            if check is not None:
                try:
                    check({**self.defaults, **params})
                except ValueError as e:
                    raise DataError(f"{where}{e}") from None

    def of(self, config: type, params: dict[str, Any]) -> dict[str, Any]:
        """The values of `params` that `config` declares (to build it from an estimator's parameters)."""
        names = {f.name for f in dataclasses.fields(config)}
        return {k: v for k, v in params.items() if k in names and k in self.specs}

    def signature(self) -> inspect.Signature:
        """The estimator's `__init__(self, *, name=default, ...)` signature (scikit-learn reads it)."""
        return inspect.Signature(
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
            + [
                inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=s.default, annotation=s.annotation)
                for s in self.specs.values()
            ]
        )

    def docstring(self) -> str:
        """A numpydoc Parameters section, one entry per hyper-parameter."""
        lines = ["Parameters", "----------"]
        for s in self.specs.values():
            lines += [f"{s.name} : {s.type_name}, default {s.default!r}"]
            lines += textwrap.wrap(s.doc, 100, initial_indent="    ", subsequent_indent="    ")
        return "\n".join(lines)


def merged_specs(schemas: Iterable[Schema]) -> dict[str, Spec]:
    """Every parameter of `schemas`, the first declaration of a name winning (its default is the one shown)."""
    out: dict[str, Spec] = {}
    for schema in schemas:
        for name, spec in schema.specs.items():
            out.setdefault(name, spec)
    return out


def optional_model(name: str, specs: dict[str, Spec]) -> type[pydantic.BaseModel]:
    """A pydantic model with every parameter of `specs` optional, default None: what a TOML file or the command
    line may set (unset ones keep the estimator's default)."""
    fields: dict[str, Any] = {s.name: (s.pydantic_type() | None, None) for s in specs.values()}
    return pydantic.create_model(name, __config__=pydantic.ConfigDict(extra="forbid"), **fields)  # type: ignore[call-overload]


def _is_float(spec: Spec, value: Any) -> bool:
    """Integers are accepted where a float is declared (`lr=1`), in strict mode too."""
    return spec.annotation is float and isinstance(value, int) and not isinstance(value, bool)


_SCHEMAS: dict[type, Schema] = {}


def schema_of(config: type) -> Schema:
    """The schema of one config class (built once): how a config validates itself when constructed."""
    if config not in _SCHEMAS:
        _SCHEMAS[config] = Schema(config)
    return _SCHEMAS[config]
