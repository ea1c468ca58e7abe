"""`potluck audit …`: what an auditor runs to check the credit log without trusting the tracker."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from potluck.audit import (
    AuditConfig,
    AuditResult,
    ProgressBase,
    check_receipt_file,
    default_state_dir,
    export_log,
    read_log_key,
    verify_log,
)
from potluck.cli.kit import JSON_OPTION, new_group
from potluck.entries import credits_text
from potluck.manifest import parse_lead_key
from potluck.tracker_client import DEFAULT_RPC_TIMEOUT, TrackerClient

audit_app = new_group("Verify a swarm's credit log, receipts and balances without trusting the tracker.")

MAX_TABLE_ROWS = 20

TRACKER_OPTION = typer.Option(..., "--tracker", help="The tracker's gRPC address, HOST:PORT.")
LOG_KEY_OPTION = typer.Option(..., "--log-key", help="The log's verifier key (origin+keyid+base64), or a file "
                                                     "holding it such as the tracker's log.pub.")
TIMEOUT_OPTION = typer.Option(DEFAULT_RPC_TIMEOUT, "--timeout", min=0.1, help="Seconds to wait for each call.")


class _Bar(ProgressBase):
    """A transient rich bar on stderr, drawn only on a terminal, so stdout (and --json) stays clean."""

    def __init__(self) -> None:
        console = Console(stderr=True)
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), console=console, transient=True,
                                  disable=not console.is_terminal)
        self._task = None

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def start(self, total: int, description: str) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


@audit_app.command("verify")
def verify(
    tracker: str = TRACKER_OPTION,
    log_key: str = LOG_KEY_OPTION,
    state_dir: Path | None = typer.Option(None, "--state-dir", help="Where to keep the last verified checkpoint and a "
                                          "copy of the entries (default: $POTLUCK_HOME/audit/<log>)."),
    compare: list[Path] | None = typer.Option(None, "--compare", help="A checkpoint file another auditor saved (or "
                                                                      "its state directory); repeatable."),
    lead_key: str | None = typer.Option(None, "--lead-key", help="The lead's account id: check the tracker's "
                                        "decisions against the manifest it signed (prices, vesting, penalties)."),
    as_json: bool = JSON_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Check the log: signature, consistency with the last run, every entry, every balance. Exit 1 on any problem."""
    key = read_log_key(log_key)
    config = AuditConfig(tracker=tracker, log_key=key, state_dir=state_dir or default_state_dir(key),
                         compare=tuple(compare or ()), rpc_timeout=timeout,
                         lead_key=parse_lead_key(lead_key) if lead_key is not None else None)
    with _Bar() as bar:
        result = verify_log(config, progress=bar)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        _print_result(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_result(result: AuditResult) -> None:
    if not result.ok:
        for problem in result.problems:
            typer.echo(problem.message)
        typer.echo(f"audit failed: {len(result.problems)} problem(s); the saved checkpoint in {result.state_dir} "
                   "was not updated")
        return
    root = result.root_hash.hex()[:16] if result.root_hash else "-"
    typer.echo(f"verified {result.origin} at size {result.tree_size} (root {root}…): "
               f"{result.num_new_entries} new entries, all {result.tree_size} replayed")
    if result.balances_compared:
        typer.echo(f"balances of {len(result.accounts)} accounts match the tracker's")
    typer.echo("policy checked against the lead's manifest" if result.policy_checked else
               "policy not checked (give --lead-key to check prices, vesting and penalties against the manifest)")
    if result.num_compared:
        typer.echo(f"consistent with {result.num_compared} compared checkpoint(s)")
    if result.accounts and len(result.accounts) <= MAX_TABLE_ROWS and result.flops_per_credit:
        table = Table("account", "granted", "escrow", "vested", "forfeited", "data granted", "data escrow",
                      "data vested", "data forfeited", "strikes", "banned")
        for a in sorted(result.accounts.values(), key=lambda a: a.account_id):
            table.add_row(a.account_id[:12], *(credits_text(f, result.flops_per_credit) for f in (
                a.granted_flops, a.escrow_flops, a.vested_flops, a.forfeited_flops, a.data_granted_flops,
                a.data_escrow_flops, a.data_vested_flops, a.data_forfeited_flops)), str(a.strikes),
                "yes" if a.banned else "")
        Console(soft_wrap=True).print(table)
    elif result.accounts:
        typer.echo(f"{len(result.accounts)} accounts (--json lists them)")
    typer.echo(f"state saved in {result.state_dir}")


@audit_app.command("export")
def export(
    tracker: str = TRACKER_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write `checkpoint` and `entries` into."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export there."),
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Save the tracker's checkpoint and every entry (one base64 line each) for verification elsewhere."""
    with TrackerClient(tracker, rpc_timeout=timeout) as client, _Bar() as bar:
        result = export_log(client, out, force=force, progress=bar)
    typer.echo(f"wrote {result.checkpoint_path} and {result.entries_path} ({result.tree_size} entries, "
               f"root {result.root_hash.hex()[:16]}…)")


@audit_app.command("receipt")
def receipt(
    path: Path = typer.Argument(..., help="A receipt file, as `potluck credits receipt` writes it."),
    log_key: str = LOG_KEY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check offline that a receipt proves its entry is in the log, and show what the entry grants."""
    summary = check_receipt_file(path, read_log_key(log_key))
    if as_json:
        typer.echo(json.dumps(summary.to_json()))
        return
    what = f"{summary.kind} to account {summary.account_id}"
    if summary.kind == "grant":
        what = (f"grant of {summary.details['credits']} credits ({summary.details['flops']} flops, "
                f"{summary.details['num_samples']} samples) to account {summary.account_id}")
        what += "".join(f"; data credit of {d['credits']} to owner {d['owner']}" for d in summary.details["data"])
    typer.echo(f"receipt OK: entry {summary.index} is in {summary.origin} at size {summary.tree_size}: {what}")
