"""`potluck identity …` and `potluck node …`: the volunteer's commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from potluck.cli import new_group
from potluck.home import default_account_key_path
from potluck.node.identity import create_account_key, load_account_key

identity_app = new_group("Create and show your account key (Ed25519); your account id is its public key.")
node_app = new_group("Run a volunteer node that trains with a swarm.")

PathOption = typer.Option(None, "--path", help="Key file (default: $POTLUCK_HOME/account.key).")


@identity_app.command("create")
def identity_create(
    path: Path | None = PathOption,
    force: bool = typer.Option(False, "--force", help="Replace an existing key file. Its account is lost."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a new account key, readable only by you (mode 0600)."""
    key = create_account_key(path or default_account_key_path(), force=force)
    if as_json:
        typer.echo(json.dumps({"account_id": key.account_id, "path": str(key.path)}))
    else:
        typer.echo(f"Created account key {key.path}\naccount id: {key.account_id}")


@identity_app.command("show")
def identity_show(
    path: Path | None = PathOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print the account id of a key file."""
    key = load_account_key(path or default_account_key_path())
    if as_json:
        typer.echo(json.dumps({"account_id": key.account_id, "path": str(key.path)}))
    else:
        typer.echo(key.account_id)
