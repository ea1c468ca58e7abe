"""`potluck swarm …`: what a project lead runs to describe, sign, start and watch a swarm."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from potluck.address import check_host_port, check_maddr, is_loopback
from potluck.cli.kit import JSON_OPTION, SWARM_STATE_DIR, identity_option, new_group, write_new_file
from potluck.errors import ConfigError
from potluck.home import default_account_key_path
from potluck.identity import load_account_key
from potluck.manifest import parse_lead_key, read_manifest_file, sign_manifest

swarm_app = new_group("Describe, sign and run a training swarm.")

TRACKER_OPTION = typer.Option(None, "--tracker", help="HOST:PORT (default: from --state-dir's swarm.json).")
STATE_DIR_OPTION = typer.Option(SWARM_STATE_DIR, "--state-dir", help="The swarm's state (swarm start's --state-dir).")


@swarm_app.command("init")
def swarm_init(
    name: str = typer.Argument(..., help="Short swarm name: letters, digits, '_', '.', '-'."),
    out: Path = typer.Option(Path("swarm.toml"), "-o", "--out", help="Where to write the template."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Write a commented swarm.toml with a fresh origin and seed; it trains `synthetic` as is."""
    from potluck.tracker.swarm import render_swarm_template

    write_new_file(out, render_swarm_template(name).encode(), force)
    typer.echo(f"Wrote {out}. Edit it, then run: potluck swarm sign {out} -o swarm.manifest")


@swarm_app.command("sign")
def swarm_sign(
    config: Path = typer.Argument(..., help="The swarm.toml to sign."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the signed manifest."),
    identity: Path | None = identity_option("The lead's"),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check swarm.toml and sign it into a manifest with your account key."""
    from potluck.tracker.swarm import load_swarm_config

    manifest = load_swarm_config(config)
    lead = load_account_key(identity or default_account_key_path())
    write_new_file(out, sign_manifest(manifest, lead), force)
    signed = read_manifest_file(out, lead_key=lead.public_key)
    _print_manifest(signed, out, as_json)


@swarm_app.command("verify")
def swarm_verify(
    manifest: Path = typer.Argument(..., help="A signed .manifest file."),
    lead_key: str | None = typer.Option(None, "--lead-key", help="Require this signer (the lead's account id)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a manifest's signature and print what it describes."""
    signed = read_manifest_file(manifest, lead_key=parse_lead_key(lead_key) if lead_key else None)
    _print_manifest(signed, manifest, as_json)


def _print_manifest(signed, path: Path, as_json: bool) -> None:
    m = signed.manifest
    info = {
        "path": str(path),
        "manifest_id": signed.manifest_id.hex(),
        "lead": signed.lead_key.hex(),
        "name": m.name,
        "origin": m.origin,
        "task": m.task.name,
        "datasets": len(m.datasets),
        "tracker": m.tracker_address,
    }
    if as_json:
        typer.echo(json.dumps(info))
    else:
        typer.echo("\n".join(f"{key + ':':13} {value}" for key, value in info.items()))


@swarm_app.command("start")
def swarm_start(
    config: Path = typer.Argument(..., help="The swarm.toml describing the swarm."),
    state_dir: Path = typer.Option(SWARM_STATE_DIR, "--state-dir", help="Ledger, keys, manifest, swarm.json."),
    db: str | None = typer.Option(None, "--db", help="SQLite path or postgresql:// URL (default: in --state-dir)."),
    listen: str = typer.Option("127.0.0.1:50051", "--listen",
                               help="The tracker's HOST:PORT (0.0.0.0:PORT lets other hosts join)."),
    dht_port: int = typer.Option(31337, "--dht-port", help="TCP port of the bootstrap DHT peer."),
    public_host: str | None = typer.Option(
        None, "--public-host", help="The address volunteers reach this host at (default: detected for 0.0.0.0)."),
    announce_maddr: list[str] = typer.Option(
        [], "--announce-maddr", help="A multiaddr the bootstrap peer is reached at (a port forward); repeatable."),
    aux_port: int = typer.Option(
        31338, "--aux-port", help="TCP port of the averaging helper volunteers behind NAT need (not for a loopback "
                                  "--listen)."),
    no_aux_peer: bool = typer.Option(False, "--no-aux-peer", help="Run no averaging helper."),
    data_dir: list[Path] = typer.Option([], "--data-dir", help="Where the manifest's dataset shards are (repeatable)."),
    identity: Path | None = identity_option("The lead's"),
    resume: Path | None = typer.Option(
        None, "--resume", help="Start the model from this checkpoint (of the same task and parameters)."),
    checkpoint_every: int = typer.Option(
        5, "--checkpoint-every", help="Save the swarm's model every N epochs (the first state at or past each)."),
) -> None:
    """Start a swarm: bootstrap DHT peer, tracker, verifier and credit ledger. Ctrl-C stops it."""
    from potluck.logs import setup_logging
    from potluck.tracker.swarm import SwarmStartConfig, load_swarm_config, run_swarm

    setup_logging()
    if not 1 <= dht_port <= 65535:
        raise ConfigError(f"--dht-port: must be from 1 to 65535 (got {dht_port})")
    if checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every: must be a positive integer (got {checkpoint_every})")
    if listen.endswith(":0"):
        raise ConfigError(f"--listen: volunteers need a fixed port (got {listen!r})")
    if not 1 <= aux_port <= 65535 or aux_port == dht_port:
        raise ConfigError(f"--aux-port: must be from 1 to 65535 and not the --dht-port (got {aux_port})")
    local = is_loopback(check_host_port(listen, "--listen").rsplit(":", 1)[0])
    manifest = load_swarm_config(config)
    lead = load_account_key(identity or default_account_key_path())

    def announce(info: dict) -> None:
        typer.echo(f"Swarm {info['origin']} is up; the tracker listens on {info['listen']}.")
        typer.echo(f"Volunteers join with:\n  potluck node join --tracker {info['tracker']} --lead-key {info['lead']} "
                   f"--tracker-cert sha256:{info['tls_sha256']}")
        typer.echo(f"Auditors check the credit log with:\n  potluck audit verify --tracker {info['tracker']} "
                   f"--log-key {state_dir / 'log.pub'}")

    run_swarm(manifest, lead, SwarmStartConfig(state_dir=state_dir, db=db, listen=listen, dht_port=dht_port,
                                               public_host=public_host,
                                               aux_port=None if no_aux_peer or local else aux_port,
                                               announce_maddrs=tuple(check_maddr(m) for m in announce_maddr),
                                               data_dirs=tuple(data_dir), checkpoint_every=checkpoint_every,
                                               resume=resume),
              on_ready=announce)


@swarm_app.command("status")
def swarm_status(
    tracker: str | None = TRACKER_OPTION,
    state_dir: Path = STATE_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show the swarm's peers, epoch, throughput, loss, reports and credits."""
    from potluck.cli.status import fetch_status, render_status
    from potluck.tracker_client import TrackerClient

    with TrackerClient(tracker_address(tracker, state_dir)) as client:
        status = fetch_status(client)
    typer.echo(json.dumps(status, indent=2)) if as_json else render_status(status)


def tracker_address(tracker: str | None, state_dir: Path) -> str:
    """--tracker, or the one in `state_dir`/swarm.json (where `swarm start` writes it)."""
    if tracker:
        return tracker
    info = state_dir / "swarm.json"
    if info.is_file():
        return json.loads(info.read_text())["tracker"]
    raise ConfigError(f"--tracker: give the tracker's HOST:PORT (no {info} to read it from)")
