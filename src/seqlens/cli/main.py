"""The `seqlens` command: one module per command group, registered here and imported when used."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from pathlib import Path
from typing import Any, cast

import typer
from typer.core import TyperCommand, TyperGroup

from seqlens.cli.common import console, reports_errors

#: in the order `seqlens --help` lists them: name -> the function (module:name) typer makes the command from
COMMANDS = {
    "demo": "seqlens.cli.training:demo",
    "train": "seqlens.cli.training:train",
    "evaluate": "seqlens.cli.evaluation:evaluate_cmd",
    "recommend": "seqlens.cli.recommending:recommend",
    "compare": "seqlens.cli.evaluation:compare_cmd",
    "calibrate": "seqlens.cli.evaluation:calibrate",
    "serve": "seqlens.cli.serving:serve",
    "explain": "seqlens.cli.explanations:explain_cmd",
    "faithfulness": "seqlens.cli.explanations:faithfulness_cmd",
    "monitor": "seqlens.cli.monitoring:monitor_cmd",
    "audit": "seqlens.cli.monitoring:audit_cmd",
    "add-items": "seqlens.cli.catalogue:add_items",
    "models": "seqlens.cli.models:app",  # a group of subcommands (a typer app), not one function
}


class LazyCommand(TyperCommand):
    """A command listed by its name and docstring, and built from its function when it runs or shows its own
    --help.

    Typer makes a command's options from its function's signature, and the signatures name what heavy modules
    define (every model's hyper-parameters, the explanation methods): building them all would import torch and
    pandas just to list the commands. So the listing reads each function's docstring from its source, as
    `pydoc.synopsis` reads a module's, and a command's module is imported only when that command is used.
    """

    def __init__(self, name: str, target: str) -> None:
        self.module, _, self.function = target.partition(":")
        super().__init__(name, help=_docstring(self.module, self.function))

    @functools.cached_property
    def command(self) -> TyperCommand:
        """The command typer makes from the function (or the group from a typer app, whose subcommands report
        their own errors); every SeqlensError it raises is a one-line error, exit 2."""
        target = getattr(importlib.import_module(self.module), self.function)
        if isinstance(target, typer.Typer):
            return cast(TyperCommand, typer.main.get_command(target))
        single = typer.Typer(add_completion=False)
        single.command(self.name)(reports_errors(target))
        return cast(TyperCommand, typer.main.get_command(single))  # one command: typer makes no group

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """The context of the built command: parsing, its --help and running are all the built command's."""
        return self.command.make_context(info_name, args, parent=parent, **extra)


def _docstring(module: str, function: str) -> str | None:
    """The function's docstring, read from its source; for a typer app (a group), the module's."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function]
    return ast.get_docstring(found[0] if found else tree)


class Commands(TyperGroup):
    """The `seqlens` group: every command of COMMANDS, each a LazyCommand."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        for name, target in COMMANDS.items():
            self.add_command(LazyCommand(name, target))


app = typer.Typer(
    cls=Commands,
    help="Attention-based sequential recommendation that explains itself.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _output() -> None:
    # piped into a file or a log: complete lines, no table cut to an assumed 80-column terminal
    if not console.is_terminal:
        console.width = 10_000


def main() -> None:
    app()


if __name__ == "__main__":
    main()
