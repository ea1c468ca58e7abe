"""`potluck node …`: the volunteer's daemon."""

from __future__ import annotations

from pathlib import Path

import typer

from potluck.cli.kit import identity_option, new_group
from potluck.home import default_account_key_path, potluck_home

node_app = new_group("Run a volunteer node that trains with a swarm.")


@node_app.command("join")
def node_join(
    tracker: str | None = typer.Option(None, "--tracker", help="The swarm's tracker, HOST:PORT."),
    manifest: Path | None = typer.Option(None, "--manifest", help="A signed .manifest file (from the lead)."),
    lead_key: str | None = typer.Option(None, "--lead-key", help="Require this lead's signature (account id)."),
    tracker_cert: str | None = typer.Option(
        None, "--tracker-cert", help="Require this tracker TLS certificate (sha256:…, from the join line)."),
    identity: Path | None = identity_option(),
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
    from potluck.tls import parse_fingerprint

    setup_logging(json_logs=json_logs)
    config = NodeConfig(
        tracker=tracker, manifest=manifest, identity=identity or default_account_key_path(),
        state_dir=state_dir or potluck_home() / "node", lead_key=parse_lead_key(lead_key) if lead_key else None,
        device=device, batch_size=batch_size, max_epochs=max_epochs, client_mode=client_mode,
        host_maddrs=tuple(host_maddrs), announce_maddrs=tuple(announce_maddrs), data_dir=data_dir,
        json_logs=json_logs, tracker_cert=parse_fingerprint(tracker_cert) if tracker_cert else None)
    raise typer.Exit(Node(config).run())
