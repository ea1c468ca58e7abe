"""`potluck model …`: the model a swarm trained, exported for anyone to run."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from potluck.cli.kit import SWARM_STATE_DIR, new_group
from potluck.errors import ConfigError

model_app = new_group("The model a swarm trained: export it with its model card.")


@model_app.command("export")
def model_export(
    checkpoint: Path | None = typer.Argument(None, help="A checkpoint (default: the newest in --state-dir)."),
    state_dir: Path = typer.Option(SWARM_STATE_DIR, "--state-dir", help="The swarm's state (swarm start's)."),
    out: Path | None = typer.Option(None, "-o", "--out", help="A new or empty directory to write into."),
    tracker: str | None = typer.Option(None, "--tracker", help="HOST:PORT (default: from --state-dir's swarm.json)."),
    data_dir: list[Path] = typer.Option([], "--data-dir", help="Where the swarm's dataset shards are (repeatable)."),
) -> None:
    """Export the swarm's model (a Hugging Face directory for task lm) and its model card."""
    from potluck.manifest import read_manifest_file
    from potluck.node.checkpoint_file import read_checkpoint
    from potluck.tracker.swarm.model_export import export_model, read_contributors
    from potluck.tracker_client import TrackerClient

    if out is None:
        raise ConfigError("-o: give the directory to export the model into")
    info_path, manifest_path = state_dir / "swarm.json", state_dir / "swarm.manifest"
    if not info_path.is_file() or not manifest_path.is_file():
        raise ConfigError(f"--state-dir {state_dir}: no swarm.json and swarm.manifest there (the lead's state dir)")
    info = json.loads(info_path.read_text())
    if checkpoint is None:
        saved = sorted((state_dir / "checkpoints").glob("model-epoch-*.safetensors"))
        if not saved:
            raise ConfigError(f"--state-dir {state_dir}: no checkpoint saved yet (the verifier saves one every "
                              f"--checkpoint-every epochs)")
        checkpoint = saved[-1]
    signed = read_manifest_file(manifest_path)
    with TrackerClient(tracker or info["tracker"]) as client:
        contributors = read_contributors(client, info["log_key"], signed.origin)
    files = export_model(read_checkpoint(checkpoint), signed, contributors, out, data_dirs=list(data_dir))
    typer.echo(f"exported {checkpoint.name} to {out}: {', '.join(f.name for f in files)}")
