"""`potluck identity …` and `potluck node …`: the volunteer's commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from potluck.cli import new_group
from potluck.home import default_account_key_path, potluck_home
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


@node_app.command("join")
def node_join(
    tracker: str | None = typer.Option(None, "--tracker", help="The swarm's tracker, HOST:PORT."),
    manifest: Path | None = typer.Option(None, "--manifest", help="A signed .manifest file (from the lead)."),
    lead_key: str | None = typer.Option(None, "--lead-key", help="Require this lead's signature (account id)."),
    identity: Path | None = typer.Option(None, "--identity", help="Account key (default: $POTLUCK_HOME/account.key)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Node state (default: $POTLUCK_HOME/node)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where dataset shards may already be."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Micro-batch size (default: what fits)."),
    max_epochs: int | None = typer.Option(None, "--max-epochs", help="Leave after this many epochs."),
    client_mode: bool = typer.Option(False, "--client-mode", help="Behind NAT: do not accept connections."),
    host_maddrs: list[str] = typer.Option([], "--host-maddr", help="libp2p multiaddr to listen on (repeatable)."),
    announce_maddrs: list[str] = typer.Option([], "--announce-maddr", help="Multiaddr others reach you at."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log JSON lines (for running as a service)."),
) -> None:
    """Join a swarm: train with it and earn verified compute credits."""
    from potluck.logs import setup_logging
    from potluck.manifest import parse_lead_key
    from potluck.node.supervisor import Node, NodeConfig

    setup_logging(json_logs=json_logs)
    config = NodeConfig(
        tracker=tracker, manifest=manifest, identity=identity or default_account_key_path(),
        state_dir=state_dir or potluck_home() / "node", lead_key=parse_lead_key(lead_key) if lead_key else None,
        device=device, batch_size=batch_size, max_epochs=max_epochs, client_mode=client_mode,
        host_maddrs=tuple(host_maddrs), announce_maddrs=tuple(announce_maddrs), data_dir=data_dir,
        json_logs=json_logs)
    raise typer.Exit(Node(config).run())
