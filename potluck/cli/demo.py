"""`potluck demo`: a whole swarm on this machine, start to finish, in a few minutes.

In a temporary directory and on 127.0.0.1 only: the lead starts a swarm (SQLite ledger), N
volunteers join and train `synthetic`, the live progress is shown, and at the end a table of
each volunteer's verified credits and the verdict of `potluck audit verify` against the tracker.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from potluck.cli.status import balance_rows
from potluck.errors import PotluckError, TrackerError
from potluck.identity import load_account_key, short_id
from potluck.tracker.swarm import LocalSwarm, local_swarm_config
from potluck.tracker_client import TrackerClient

NODE_STAGGER = 1.0  # seconds between volunteers joining
SETTLE_TIMEOUT = 60.0  # seconds to wait, after training, for the last checks and vesting


def demo(
    nodes: int = typer.Option(3, "--nodes", help="How many volunteers join."),
    epochs: int = typer.Option(4, "--epochs", help="Epochs each volunteer trains."),
    keep: str | None = typer.Option(None, "--keep", help="Keep everything in this directory (default: a temp dir)."),
) -> None:
    """Run a whole swarm on this machine: a lead, volunteers, credits and an audit, in a few minutes."""
    raise typer.Exit(run_demo(num_nodes=nodes, epochs=epochs, keep=Path(keep) if keep else None, console=Console()))


def run_demo(*, num_nodes: int, epochs: int, keep: Path | None, console: Console) -> int:
    if not 1 <= num_nodes <= 8:
        raise PotluckError(f"--nodes: must be from 1 to 8 (got {num_nodes})")
    if not 1 <= epochs <= 50:
        raise PotluckError(f"--epochs: must be from 1 to 50 (got {epochs})")
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="potluck-demo-"))
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop every process we started, as Ctrl-C does
    try:
        with LocalSwarm(workdir, config_text=local_swarm_config("demo", num_nodes=num_nodes),
                        num_nodes=num_nodes) as swarm:
            info = swarm.start()
            console.print(f"swarm [bold]{info['origin']}[/bold] is up: tracker {info['tracker']}, state in {workdir}")
            for i in range(num_nodes):
                swarm.start_node(f"volunteer-{i + 1}", max_epochs=epochs)
                time.sleep(NODE_STAGGER)
            _watch(swarm, console)
            codes = {name: node.popen.returncode for name, node in swarm.nodes.items()}
            rows = _settle(swarm)
            audit = swarm.run_cli("audit", "verify", "--tracker", info["tracker"], "--log-key",
                                  str(swarm.state_dir / "log.pub"), "--lead-key", info["lead"], "--state-dir",
                                  str(workdir / "auditor"), "--json", home=workdir / "auditor", timeout=300)
        _print_credits(console, swarm, rows)
        verdict = json.loads(audit.stdout) if audit.stdout.strip().startswith("{") else {}
        ok = audit.returncode == 0 and all(code == 0 for code in codes.values())
        problems = verdict.get("problems") or [audit.stderr.strip()]
        console.print(f"potluck audit verify: [bold]{'OK' if audit.returncode == 0 else 'FAILED'}[/bold] "
                      f"({verdict.get('tree_size', '?')} ledger entries checked)"
                      + ("" if audit.returncode == 0 else f": {problems}"))
        if any(codes.values()):
            console.print(f"volunteers' exit codes: {codes} (logs in {workdir})")
        console.print(f"done in {time.monotonic() - started:.0f}s")
        return 0 if ok else 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _watch(swarm: LocalSwarm, console: Console) -> None:
    if not console.is_terminal:  # a log, not a screen: one table every few seconds
        while any(node.alive() for node in swarm.nodes.values()):
            console.print(_progress_table(swarm))
            time.sleep(10.0)
        return
    with Live(console=console, refresh_per_second=1, transient=False) as live:
        while any(node.alive() for node in swarm.nodes.values()):
            live.update(_progress_table(swarm))
            time.sleep(1.0)
        live.update(_progress_table(swarm))


def _progress_table(swarm: LocalSwarm) -> Table:
    table = Table(title="training (synthetic)")
    for column in ("epoch", "peers", "samples/s", "loss", "reports", "ledger entries", "volunteers training"):
        table.add_column(column, justify="right")
    try:
        s = swarm.status()
        table.add_row(str(s.epoch), str(s.num_peers), f"{s.samples_per_second:.0f}",
                      f"{s.loss:.4f}" if s.num_reports else "-", str(s.num_reports), str(s.tree_size),
                      str(sum(node.alive() for node in swarm.nodes.values())))
    except TrackerError:
        table.add_row("?", "?", "?", "?", "?", "?", "tracker not answering")
    return table


def _settle(swarm: LocalSwarm) -> list[dict]:
    """Balances once the verifier has decided the last checks (or the settling time is over)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    with TrackerClient(swarm.info["tracker"]) as client:
        previous = None
        while True:
            rows = balance_rows(client.balances())
            if rows == previous or time.monotonic() > deadline:
                return rows
            previous = rows
            time.sleep(5.0)


def _print_credits(console: Console, swarm: LocalSwarm, rows: list[dict]) -> None:
    names = {}
    for name in swarm.nodes:
        names[load_account_key(swarm.workdir / name / "account.key").account_id] = name
    table = Table(title="verified compute credits (1 credit = 1 PFLOP)")
    for column in ("volunteer", "account", "vested", "in escrow", "forfeited", "strikes"):
        table.add_column(column, justify="left" if column in ("volunteer", "account") else "right")
    for row in rows:
        table.add_row(names.get(row["account_id"], "?"), short_id(row["account_id"]), row["vested"], row["escrow"],
                      row["forfeited"], str(row["strikes"]))
    console.print(table)
