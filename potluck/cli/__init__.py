"""The `potluck` command: one group per kind of work, joined like `git`'s subcommands (a file per group here).

This package stands above every other: it may import any of them, and none imports it.
"""

from __future__ import annotations

import typer

from potluck import __version__
from potluck.cli.audit import audit_app
from potluck.cli.credits import credits_app
from potluck.cli.data import data_app
from potluck.cli.demo import demo
from potluck.cli.identity import identity_app
from potluck.cli.kit import PotluckGroup
from potluck.cli.model import model_app
from potluck.cli.node import node_app
from potluck.cli.swarm import swarm_app
from potluck.cli.tracker import tracker_app

app = typer.Typer(
    cls=PotluckGroup,
    help="potluck: bring your GPU, share the model. Train together on volunteered hardware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"potluck {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """potluck: bring your GPU, share the model."""


app.add_typer(identity_app, name="identity")
app.add_typer(swarm_app, name="swarm")
app.add_typer(node_app, name="node")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(tracker_app, name="tracker")
app.add_typer(credits_app, name="credits")
app.add_typer(audit_app, name="audit")
app.command("demo")(demo)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="potluck")
