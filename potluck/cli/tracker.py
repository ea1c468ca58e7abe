"""`potluck tracker …`: the tracker alone, for a manifest already signed (`swarm start` runs it for you)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from potluck.cli.kit import SWARM_STATE_DIR, new_group
from potluck.manifest import read_manifest_file

tracker_app = new_group("Run the tracker that verifies contributions and keeps the credit log.")


@tracker_app.command("serve")
def tracker_serve(
    manifest: Path = typer.Option(..., "--manifest", help="The swarm's signed manifest."),
    state_dir: Path = typer.Option(SWARM_STATE_DIR, "--state-dir", help="Where the log key lives."),
    db: str | None = typer.Option(None, "--db", help="SQLite path or postgresql:// URL (default: in --state-dir)."),
    listen: str = typer.Option("127.0.0.1:50051", "--listen", help="HOST:PORT to serve on."),
    data_dir: list[Path] = typer.Option([], "--data-dir", help="Where the manifest's dataset shards are (repeatable)."),
) -> None:
    """Run the tracker alone, for an existing signed manifest and database."""
    import asyncio

    from potluck.logs import setup_logging
    from potluck.tracker.swarm import serve_until_signalled, shards_in
    from potluck.tracker.tracker import Tracker, TrackerConfig

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
