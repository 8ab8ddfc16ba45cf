"""The `seqlens` command: one module per command group, registered here."""

from __future__ import annotations

import typer

from seqlens.cli import evaluation, explanations, recommending, serving, training
from seqlens.cli.common import console, reports_errors

app = typer.Typer(
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


# in the order `seqlens --help` lists them; every command's SeqlensError is a one-line error, exit 2
app.command()(reports_errors(training.demo))
app.command()(reports_errors(training.train))
app.command("evaluate")(reports_errors(evaluation.evaluate_cmd))
app.command()(reports_errors(recommending.recommend))
app.command("compare")(reports_errors(evaluation.compare_cmd))
app.command()(reports_errors(evaluation.calibrate))
app.command()(reports_errors(serving.serve))
app.command("explain")(reports_errors(explanations.explain_cmd))
app.command("faithfulness")(reports_errors(explanations.faithfulness_cmd))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
