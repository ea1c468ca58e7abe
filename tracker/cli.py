"""`potluck swarm …`, `potluck tracker …` and `potluck credits …`: the lead's commands."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from potluck.cli import new_group
from potluck.errors import ConfigError
from potluck.home import default_account_key_path
from potluck.manifest import parse_lead_key, read_manifest_file, sign_manifest
from potluck.node.identity import load_account_key
from potluck.swarm_config import load_swarm_config, render_swarm_template

swarm_app = new_group("Describe, sign and run a training swarm.")
tracker_app = new_group("Run the tracker that verifies contributions and keeps the credit log.")
credits_app = new_group("Show compute credits and fetch receipts.")


def _write_new_file(path: Path, data: bytes, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists; pass --force to replace it")
    try:
        path.write_bytes(data)
    except OSError as e:
        raise ConfigError(f"{path}: cannot write ({e.strerror})") from None


@swarm_app.command("init")
def swarm_init(
    name: str = typer.Argument(..., help="Short swarm name: letters, digits, '_', '.', '-'."),
    out: Path = typer.Option(Path("swarm.toml"), "-o", "--out", help="Where to write the template."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Write a commented swarm.toml with a fresh origin and seed; it trains `synthetic` as is."""
    _write_new_file(out, render_swarm_template(name).encode(), force)
    typer.echo(f"Wrote {out}. Edit it, then run: potluck swarm sign {out} -o swarm.manifest")


@swarm_app.command("sign")
def swarm_sign(
    config: Path = typer.Argument(..., help="The swarm.toml to sign."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the signed manifest."),
    identity: Path | None = typer.Option(None, "--identity", help="Lead's key (default: $POTLUCK_HOME/account.key)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check swarm.toml and sign it into a manifest with your account key."""
    manifest = load_swarm_config(config)
    lead = load_account_key(identity or default_account_key_path())
    _write_new_file(out, sign_manifest(manifest, lead), force)
    signed = read_manifest_file(out, lead_key=lead.public_key)
    _print_manifest(signed, out, as_json)


@swarm_app.command("verify")
def swarm_verify(
    manifest: Path = typer.Argument(..., help="A signed .manifest file."),
    lead_key: str | None = typer.Option(None, "--lead-key", help="Require this signer (the lead's account id)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
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


@credits_app.command("receipt")
def credits_receipt(
    tracker: str = typer.Option(..., "--tracker", help="The tracker's gRPC address, HOST:PORT."),
    index: int = typer.Option(..., "--index", min=0, help="The ledger index of the entry."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the receipt."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds to wait for the tracker."),
) -> None:
    """Fetch a receipt proving a ledger entry is in the log; anyone can check it offline."""
    from potluck.audit.client import LedgerClient

    with LedgerClient(tracker, rpc_timeout=timeout) as client:
        text = client.receipt(index)
    _write_new_file(out, text.encode(), force)
    typer.echo(f"Wrote the receipt for entry {index} to {out}. Check it with: "
               f"potluck audit receipt {out} --log-key log.pub")


@swarm_app.command("start")
def swarm_start(
    config: Path = typer.Argument(..., help="The swarm.toml describing the swarm."),
    state_dir: Path = typer.Option(Path("swarm-state"), "--state-dir", help="Ledger, keys, manifest, swarm.json."),
    db: str | None = typer.Option(None, "--db", help="SQLite path or postgresql:// URL (default: in --state-dir)."),
    listen: str = typer.Option("127.0.0.1:50051", "--listen", help="The tracker's HOST:PORT."),
    dht_port: int = typer.Option(31337, "--dht-port", help="TCP port of the bootstrap DHT peer."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where the manifest's dataset shards are."),
    identity: Path | None = typer.Option(None, "--identity", help="Lead's key (default: $POTLUCK_HOME/account.key)."),
    checkpoint_every: int = typer.Option(
        5, "--checkpoint-every", help="Save the swarm's model every N epochs (the first state at or past each)."),
) -> None:
    """Start a swarm: bootstrap DHT peer, tracker, verifier and credit ledger. Ctrl-C stops it."""
    from potluck.logs import setup_logging
    from potluck.tracker.lead import SwarmStartConfig, run_swarm

    setup_logging()
    if not 1 <= dht_port <= 65535:
        raise ConfigError(f"--dht-port: must be from 1 to 65535 (got {dht_port})")
    if checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every: must be a positive integer (got {checkpoint_every})")
    if listen.endswith(":0"):
        raise ConfigError(f"--listen: volunteers need a fixed port (got {listen!r})")
    manifest = load_swarm_config(config)
    lead = load_account_key(identity or default_account_key_path())

    def announce(info: dict) -> None:
        typer.echo(f"Swarm {info['origin']} is up; the tracker listens on {info['tracker']}.")
        typer.echo(f"Volunteers join with:\n  potluck node join --tracker {info['tracker']} --lead-key {info['lead']}")
        typer.echo(f"Auditors check the credit log with:\n  potluck audit verify --tracker {info['tracker']} "
                   f"--log-key {state_dir / 'log.pub'}")

    run_swarm(manifest, lead, SwarmStartConfig(state_dir=state_dir, db=db, listen=listen, dht_port=dht_port,
                                               data_dir=data_dir, checkpoint_every=checkpoint_every),
              on_ready=announce)


@tracker_app.command("serve")
def tracker_serve(
    manifest: Path = typer.Option(..., "--manifest", help="The swarm's signed manifest."),
    state_dir: Path = typer.Option(Path("swarm-state"), "--state-dir", help="Where the log key lives."),
    db: str | None = typer.Option(None, "--db", help="SQLite path or postgresql:// URL (default: in --state-dir)."),
    listen: str = typer.Option("127.0.0.1:50051", "--listen", help="HOST:PORT to serve on."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where the manifest's dataset shards are."),
) -> None:
    """Run the tracker alone, for an existing signed manifest and database."""
    import asyncio

    from potluck.logs import setup_logging
    from potluck.tracker.app import Tracker, TrackerConfig
    from potluck.tracker.lead import serve_until_signalled, shards_in

    setup_logging()
    signed = read_manifest_file(manifest)

    verify = bool(signed.manifest.bootstrap_peers)
    if not verify:
        logging.getLogger(__name__).warning(
            "the manifest names no bootstrap peers: the verifier cannot follow the swarm, so only the checks "
            "made on arrival apply (sign it after `swarm start` has filled them in)")

    async def serve() -> None:
        tracker = await Tracker.start(signed, TrackerConfig(
            state_dir=state_dir, db=db or str(state_dir / "ledger.sqlite"), listen=listen,
            shards=shards_in(data_dir, signed.manifest), verify=verify))
        typer.echo(f"tracker for {signed.origin} serving on port {tracker.port}")
        await serve_until_signalled(tracker)

    asyncio.run(serve())


def _tracker_address(tracker: str | None) -> str:
    """--tracker, or the one in ./swarm-state/swarm.json (where `swarm start` writes it)."""
    if tracker:
        return tracker
    info = Path("swarm-state") / "swarm.json"
    if info.is_file():
        return json.loads(info.read_text())["tracker"]
    raise ConfigError("--tracker: give the tracker's HOST:PORT (no ./swarm-state/swarm.json to read it from)")


@swarm_app.command("status")
def swarm_status(
    tracker: str | None = typer.Option(None, "--tracker", help="HOST:PORT (default: from ./swarm-state)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the swarm's peers, epoch, throughput, loss, reports and credits."""
    from potluck.audit.client import LedgerClient
    from potluck.tracker.status import fetch_status, render_status

    address = _tracker_address(tracker)
    with LedgerClient(address) as client:
        status = fetch_status(client, address)
    typer.echo(json.dumps(status, indent=2)) if as_json else render_status(status)


@credits_app.command("show")
def credits_show(
    tracker: str | None = typer.Option(None, "--tracker", help="HOST:PORT (default: from ./swarm-state)."),
    account: str | None = typer.Option(None, "--account", help="Only this account (its 64-hex-digit id)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show credit balances: granted, in escrow, vested and forfeited, as a leaderboard."""
    from potluck.audit.client import LedgerClient
    from potluck.tracker.status import balance_rows, render_balances

    with LedgerClient(_tracker_address(tracker)) as client:
        rows = balance_rows(client.balances(), account)
    typer.echo(json.dumps(rows, indent=2)) if as_json else render_balances(rows)
