"""`potluck data …`: a community's text made ready for a swarm."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from potluck.cli.kit import new_group
from potluck.errors import ConfigError

data_app = new_group("Prepare a community's text for a swarm: its own tokenizer and token shards.")

_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str, flag: str) -> int:
    """Bytes in "16M", "512KiB", "1g" or "65536"."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"{flag}: must be a size such as 16M, 512K or 1048576 (got {text!r})")
    return int(match.group(1)) * _UNITS[(match.group(2) or "")[:1].lower()]


@data_app.command("prepare")
def data_prepare(
    inputs: list[Path] = typer.Argument(..., help="Corpus files (.txt, .jsonl, .parquet) or directories of them."),
    out: Path | None = typer.Option(None, "-o", "--out", help="A new or empty directory to write into."),
    name: str = typer.Option("", "--name", help="The dataset's name (its shards are named after it)."),
    license_: str = typer.Option("", "--license", help="The text's licence: an SPDX id (CC-BY-4.0) or its terms."),
    owner: str = typer.Option("", "--owner", help="Who owns the text (credited for it)."),
    vocab_size: int = typer.Option(8192, "--vocab-size", help="Tokens in the community's own BPE vocabulary."),
    shard_size: str = typer.Option("16M", "--shard-size", help="Largest token shard (bytes; K, M, G allowed)."),
    eval_share: float = typer.Option(0.05, "--eval-share", help="Share of every document held out for evaluation."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer",
                                          help="Encode with an earlier run's tokenizer.json, not a new one."),
) -> None:
    """Train the community's tokenizer on its text and write token shards plus datasets.toml."""
    from rich.progress import Progress

    from potluck.tracker.data import PrepareConfig, prepare_dataset

    if out is None:
        raise ConfigError("-o: give the directory to write the tokenizer and shards into")
    config = PrepareConfig(name=name, license=license_, owner=owner, vocab_size=vocab_size,
                           shard_bytes=parse_size(shard_size, "--shard-size"), eval_share=eval_share,
                           tokenizer=tokenizer)
    with Progress(transient=True) as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"{stage} {total} files", total=total)
            progress.update(tasks[stage], completed=done)

        tables = prepare_dataset(inputs, out, config, progress=report)
    for table in tables:
        typer.echo(f"{table['kind']:9} {table['name']}  {table['size_bytes']} bytes  {table['sha256'][:12]}…")
    typer.echo(f"Append {out / 'datasets.toml'} to swarm.toml; serve {out} with `swarm start --data-dir {out}`.")
