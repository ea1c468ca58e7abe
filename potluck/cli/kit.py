"""What every command group shares: the group factory, the one-line error handling, common options."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from typer.core import TyperGroup

from potluck.errors import ConfigError, PotluckError


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


def identity_option(whose: str = "Your") -> typer.Option:
    """`--identity FILE`: an account key file, the same flag in every command that signs."""
    return typer.Option(None, "--identity", help=f"{whose} account key (default: $POTLUCK_HOME/account.key).")


JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")
SWARM_STATE_DIR = Path("swarm-state")  # where `swarm start` keeps the lead's files unless told otherwise


def write_new_file(path: Path, data: bytes, force: bool) -> None:
    """Write a file the user asked for, refusing to replace one unless `force`."""
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; pass --force to replace it")
    try:
        path.write_bytes(data)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write ({e.strerror})") from None
