"""`potluck swarm …`, `potluck tracker …` and `potluck credits …`: the lead's commands."""

from __future__ import annotations

import json
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

