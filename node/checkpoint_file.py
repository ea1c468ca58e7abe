"""A swarm checkpoint: the model's tensors in safetensors (no pickle: loading one runs no code), and
in its metadata what is needed to rebuild and check it.

Metadata (all strings, as safetensors keeps them): `format` ("potluck-checkpoint/1"), `epoch`,
`task` and `params` (JSON) to build the model, `origin` (the swarm), and `ledger_entries_seen`:
the largest ledger index whose report the verifier had been handed when it saved the state (the
log had at least that many entries). `potluck model export` reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from potluck.errors import ConfigError

FORMAT = "potluck-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    task: str
    params: dict
    origin: str
    ledger_entries_seen: int
    tensors: dict[str, torch.Tensor]


def checkpoint_bytes(model: torch.nn.Module, *, epoch: int, task: str, params: dict, origin: str,
                     ledger_entries_seen: int) -> bytes:
    from safetensors.torch import save

    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    return save(tensors, metadata={"format": FORMAT, "epoch": str(epoch), "task": task, "params": json.dumps(params),
                                   "origin": origin, "ledger_entries_seen": str(ledger_entries_seen)})


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint in `path`; ConfigError naming the file if it is not one."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
        tensors = load(data)
        meta = json.loads(data[8:8 + int.from_bytes(data[:8], "little")]).get("__metadata__", {})
    except (OSError, SafetensorError, ValueError) as e:
        raise ConfigError(f"{path}: not a safetensors checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a potluck checkpoint (format {meta.get('format')!r}, not {FORMAT!r})")
    try:
        return Checkpoint(epoch=int(meta["epoch"]), task=meta["task"], params=json.loads(meta["params"]),
                          origin=meta["origin"], ledger_entries_seen=int(meta["ledger_entries_seen"]), tensors=tensors)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{path}: a potluck checkpoint with bad metadata ({e})") from None
