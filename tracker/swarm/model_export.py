"""`potluck model export`: what a swarm trained, as files anyone can run, with a card that says whose it is.

For task `lm`, a Hugging Face model directory that `transformers` loads offline
(`AutoModelForCausalLM.from_pretrained(OUT)`, `AutoTokenizer.from_pretrained(OUT)`): config.json,
model.safetensors, generation_config.json, and the swarm's own tokenizer (tokenizer.json with its
config). For the other tasks, model.safetensors with the task and its parameters in its metadata.
Always a model card, README.md: the swarm, its community, every dataset with its licence and owner,
every contributor with the credit the log holds for them, how far the model was trained, and the
credit log's checkpoint (origin, size, root hash, verified with the log key) at export, so anyone can
check the contributor list against the log (`potluck audit verify`).

Not yet (issue 13): data owners' credit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from potluck.datasets import find_shard
from potluck.entries import credits_text
from potluck.errors import ConfigError
from potluck.identity import ACCOUNT_ID_RE
from potluck.manifest import SignedManifest, param_dict
from potluck.node.checkpoint_file import Checkpoint
from potluck.node.tasks import get_task
from potluck.tlog.checkpoint import verify_checkpoint

END_OF_TEXT = "<|endoftext|>"  # the special token `data prepare` ends documents with


@dataclass(frozen=True)
class Contributors:
    """What the credit log says at export: its verified checkpoint and every account's balance."""

    origin: str
    size: int
    root_hash: str
    flops_per_credit: int
    balances: list  # tracker_pb2.Balance, largest vested first
    held_out: tuple[int, float] | None  # (epoch, loss) the tracker's verifier last measured


def read_contributors(client, log_key: str, origin: str) -> Contributors:
    checkpoint = verify_checkpoint(client.checkpoint(), log_key, expected_origin=origin)
    balances, status = client.balances(), client.status()
    held_out = (status.held_out.epoch, status.held_out.loss) if status.HasField("held_out") else None
    return Contributors(checkpoint.origin, checkpoint.size, checkpoint.root_hash.hex(), balances.flops_per_credit,
                        sorted(balances.balances, key=lambda b: (-b.vested_flops - b.data_vested_flops, b.account_id)),
                        held_out)


def export_model(checkpoint: Checkpoint, signed: SignedManifest, contributors: Contributors, out: Path,
                 data_dirs: list[Path]) -> list[Path]:
    """Write the export into `out` (new or empty); return the files written."""
    m = signed.manifest
    if checkpoint.origin != signed.origin:
        raise ConfigError(f"checkpoint: it is of swarm {checkpoint.origin!r}, the manifest of {signed.origin!r}")
    if checkpoint.task != m.task.name or checkpoint.params != param_dict(m.task):
        raise ConfigError(f"checkpoint: its task ({checkpoint.task} {checkpoint.params}) is not the manifest's")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"-o {out}: must be a new or empty directory (nothing is overwritten)")
    task = get_task(checkpoint.task, checkpoint.params)
    model = task.build_model()
    try:
        model.load_state_dict(checkpoint.tensors)
    except RuntimeError as e:
        raise ConfigError(f"checkpoint: its tensors do not fit task {checkpoint.task}: {str(e).splitlines()[0]}") \
            from None
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint.task == "lm":
        _export_transformers(model, signed, out, data_dirs)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.safetensors",
                  metadata={"task": checkpoint.task, "params": json.dumps(checkpoint.params)})
    tokens = _tokens_trained(contributors, task)
    (out / "README.md").write_text(model_card(signed, checkpoint, contributors, tokens), encoding="utf-8")
    return sorted(out.iterdir())


def _export_transformers(model, signed: SignedManifest, out: Path, data_dirs: list[Path]) -> None:
    from tokenizers import Tokenizer
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    shard = next((d for d in signed.manifest.datasets if d.kind == "tokenizer"), None)
    if shard is None:
        raise ConfigError("the manifest names no tokenizer shard (kind = \"tokenizer\", from `potluck data prepare`)")
    path = find_shard(shard, data_dirs)
    if path is None:
        raise ConfigError(f"tokenizer shard {shard.name} is not in {', '.join(map(str, data_dirs))} (--data-dir)")
    from potluck.datasets import check_sha256

    check_sha256(path.read_bytes(), shard.sha256, f"tokenizer shard {path}")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(path)), eos_token=END_OF_TEXT,
                                        bos_token=END_OF_TEXT, pad_token=END_OF_TEXT,
                                        model_max_length=model.config.max_position_embeddings)
    end = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    model.config.eos_token_id = model.config.bos_token_id = model.config.pad_token_id = end
    model.generation_config = GenerationConfig(eos_token_id=end, bos_token_id=end, pad_token_id=end)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _tokens_trained(contributors: Contributors, task) -> int:
    """Tokens of every grant in the log not forfeited: their FLOPs over the task's FLOPs per sample, times
    tokens per sample."""
    flops = sum(b.granted_flops - b.forfeited_flops for b in contributors.balances)
    return flops // task.flops_per_sample() * task.tokens_per_sample()


def _who(credited: str) -> str:
    """An account by its first 16 hex digits; a data owner named in the manifest by its name."""
    return credited[:16] if ACCOUNT_ID_RE.fullmatch(credited) else credited.replace("|", "/").replace("`", "'")


def model_card(signed: SignedManifest, checkpoint: Checkpoint, contributors: Contributors, tokens: int) -> str:
    m = signed.manifest
    unit = contributors.flops_per_credit or 1
    community = ", ".join(f"{k}: {v}" for k, v in (("language", m.community.language), ("region", m.community.region),
                                                   ("sector", m.community.sector)) if v) or "not given"
    tags = [t for t in ("potluck", m.community.language, m.task.name) if t]
    lines = ["---", f"tags: {json.dumps(tags, ensure_ascii=False)}"]
    if m.community.language:
        lines.append(f"language: {json.dumps(m.community.language)}")
    lines += ["---", "", f"# {m.name}", "", m.description, "",
              f"Trained together on volunteered hardware with potluck, in swarm `{signed.origin}`.", "",
              "## The model", "",
              f"- task `{m.task.name}`, parameters `{json.dumps(checkpoint.params, sort_keys=True)}`",
              f"- trained {checkpoint.epoch} epochs; {tokens:,} tokens in the grants of the credit log",
              "- held-out loss: " + ("not measured (the manifest has no eval shards)" if contributors.held_out is None
                                     else f"{contributors.held_out[1]:.4f} at epoch {contributors.held_out[0]} "
                                          f"(the swarm's model on its held-out text, as the tracker measured it)"),
              f"- community: {community}", "", "## The data", "",
              "| dataset | kind | licence | owner | sha256 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {d.name} | {d.kind or 'train'} | {d.license} | {d.owner} | `{d.sha256[:16]}…` |" for d in m.datasets]
    if not m.datasets:
        lines.append(f"| (generated by task `{m.task.name}`) | | | | |")
    lines += ["", "## The contributors", "",
              "Credit in the swarm's log at export: compute (1 credit = 1 PFLOP of verified training) and data (what "
              f"the owners of the text earned: {m.credit_policy.data_share_ppm / 10_000:g}% of the compute its "
              "samples paid for).", "",
              "| account | compute vested | compute in escrow | data vested | data in escrow | strikes |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| `{_who(b.account_id)}` | {credits_text(b.vested_flops, unit)} | {credits_text(b.escrow_flops, unit)} "
              f"| {credits_text(b.data_vested_flops, unit)} | {credits_text(b.data_escrow_flops, unit)} "
              f"| {b.strikes}{' (banned)' if b.banned else ''} |" for b in contributors.balances]
    lines += ["", "## Check it", "",
              "The credit log's checkpoint when this model was exported, verified with the log key:", "",
              f"- origin: `{contributors.origin}`", f"- size: {contributors.size} entries",
              f"- root hash: `{contributors.root_hash}`",
              f"- exported: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}", "",
              "`potluck audit verify --tracker HOST:PORT --log-key log.pub` replays the log and checks every "
              "balance above.", ""]
    return "\n".join(lines)
