"""`potluck identity …`: the account key everyone signs with (volunteers, leads, auditors)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from potluck.cli.kit import JSON_OPTION, identity_option, new_group
from potluck.home import default_account_key_path
from potluck.identity import create_account_key, load_account_key

identity_app = new_group("Create and show your account key (Ed25519); your account id is its public key.")


@identity_app.command("create")
def identity_create(
    identity: Path | None = identity_option(),
    force: bool = typer.Option(False, "--force", help="Replace an existing key file. Its account is lost."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a new account key, readable only by you (mode 0600)."""
    key = create_account_key(identity or default_account_key_path(), force=force)
    if as_json:
        typer.echo(json.dumps({"account_id": key.account_id, "path": str(key.path)}))
    else:
        typer.echo(f"Created account key {key.path}\naccount id: {key.account_id}")


@identity_app.command("show")
def identity_show(
    identity: Path | None = identity_option(),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the account id of a key file."""
    key = load_account_key(identity or default_account_key_path())
    if as_json:
        typer.echo(json.dumps({"account_id": key.account_id, "path": str(key.path)}))
    else:
        typer.echo(key.account_id)
