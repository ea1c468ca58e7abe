"""`potluck credits …`: the leaderboard, and receipts that prove a credit entry is in the log."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from potluck.cli.kit import JSON_OPTION, new_group, write_new_file
from potluck.cli.swarm import STATE_DIR_OPTION, TRACKER_OPTION, tracker_address

credits_app = new_group("Show compute credits and fetch receipts.")


@credits_app.command("show")
def credits_show(
    tracker: str | None = TRACKER_OPTION,
    state_dir: Path = STATE_DIR_OPTION,
    account: str | None = typer.Option(None, "--account",
                                       help="Only this account (its 64-hex-digit id), or data owner (its name)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show credit balances: compute and data credit, each granted, in escrow, vested and forfeited."""
    from potluck.cli.status import balance_rows, render_balances
    from potluck.identity import parse_credited
    from potluck.tracker_client import TrackerClient

    account = parse_credited(account, "--account") if account is not None else None
    with TrackerClient(tracker_address(tracker, state_dir)) as client:
        rows = balance_rows(client.balances(), account)
    typer.echo(json.dumps(rows, indent=2)) if as_json else render_balances(rows)


@credits_app.command("receipt")
def credits_receipt(
    tracker: str = typer.Option(..., "--tracker", help="The tracker's gRPC address, HOST:PORT."),
    index: int = typer.Option(..., "--index", min=0, help="The ledger index of the entry."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the receipt."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds to wait for the tracker."),
) -> None:
    """Fetch a receipt proving a ledger entry is in the log; anyone can check it offline."""
    from potluck.tracker_client import TrackerClient

    with TrackerClient(tracker, rpc_timeout=timeout) as client:
        text = client.receipt(index)
    write_new_file(out, text.encode(), force)
    typer.echo(f"Wrote the receipt for entry {index} to {out}. Check it with: "
               f"potluck audit receipt {out} --log-key log.pub")
