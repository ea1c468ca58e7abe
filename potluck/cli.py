"""The `potluck` command: one group per kind of work, joined like `git`'s subcommands."""

from __future__ import annotations

import os

import typer
from typer.core import TyperGroup

from potluck import __version__
from potluck.errors import PotluckError


def debug_enabled() -> bool:
    return os.environ.get("POTLUCK_DEBUG") == "1"


class PotluckGroup(TyperGroup):
    """Turns a known error anywhere below into one line on stderr and exit code 1."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except PotluckError as e:
            if debug_enabled():
                raise
            typer.echo(f"error: {e}", err=True)
            ctx.exit(1)


def new_group(help_text: str) -> typer.Typer:
    """A command group that prints its help when called bare."""
    return typer.Typer(help=help_text, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False)


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


def _register_groups() -> None:
    from potluck.audit.cli import audit_app
    from potluck.node.cli import identity_app, node_app
    from potluck.tracker.cli import credits_app, swarm_app, tracker_app

    app.add_typer(identity_app, name="identity")
    app.add_typer(swarm_app, name="swarm")
    app.add_typer(node_app, name="node")
    app.add_typer(tracker_app, name="tracker")
    app.add_typer(credits_app, name="credits")
    app.add_typer(audit_app, name="audit")


_register_groups()


@app.command("demo")
def demo(
    nodes: int = typer.Option(3, "--nodes", help="How many volunteers join."),
    epochs: int = typer.Option(4, "--epochs", help="Epochs each volunteer trains."),
    keep: str | None = typer.Option(None, "--keep", help="Keep everything in this directory (default: a temp dir)."),
) -> None:
    """Run a whole swarm on this machine: a lead, volunteers, credits and an audit, in a few minutes."""
    from pathlib import Path

    from rich.console import Console

    from potluck.tracker.demo import run_demo

    raise typer.Exit(run_demo(num_nodes=nodes, epochs=epochs, keep=Path(keep) if keep else None,
                              console=Console()))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="potluck")
