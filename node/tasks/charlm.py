"""`charlm`: a small causal transformer over UTF-8 bytes (vocabulary 256), trained on text shards.

Shards are fetched and checked by the caller (see `load_shards`); this module only decides which
windows of them a node trains on. The corpus is the shards in sha256 order; a sample is a window
of seq_len + 1 bytes that never crosses a shard boundary, at an offset drawn from the keyed hash.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from potluck.datasets import check_sha256
from potluck.errors import ConfigError
from potluck.node.tasks.base import TaskBase, require_positive_int
from potluck.windows import Windows

VOCAB_SIZE = 256


def load_shards(paths_by_sha256: Mapping[str, str | Path]) -> list[tuple[str, bytes]]:
    """Read shard files and check each against its expected sha256 (lowercase hex).

    Returns (sha256, bytes) pairs in sha256 order; raises VerificationError on the first mismatch.
    """
    shards = []
    for expected, path in sorted(paths_by_sha256.items()):
        data = Path(path).read_bytes()
        check_sha256(data, expected.lower(), f"shard {path}")
        shards.append((expected.lower(), data))
    return shards


class CharLM(nn.Module):
    """GPT-style decoder: learned positions, pre-norm blocks, untied output head, no dropout."""

    def __init__(self, *, d_model: int, n_layers: int, n_heads: int, seq_len: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB_SIZE, d_model)
        self.position_embedding = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, n_heads) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, VOCAB_SIZE, bias=False)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:  # GPT-2's scaled init of the residual projections
            nn.init.normal_(block.attn_out.weight, std=0.02 / math.sqrt(2 * n_layers))
            nn.init.normal_(block.mlp_out.weight, std=0.02 / math.sqrt(2 * n_layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_out = nn.Linear(d_model, d_model)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp_in = nn.Linear(d_model, 4 * d_model)
        self.mlp_out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, length, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_out(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp_out(F.gelu(self.mlp_in(self.mlp_norm(x))))


class CharLMTask(TaskBase):
    """Next-byte prediction on verified text shards."""

    name = "charlm"
    param_defaults = {
        "d_model": 128,
        "n_layers": 2,
        "n_heads": 4,
        "seq_len": 128,
        "init_seed": 0,
    }

    def __init__(
        self, params: Mapping[str, Any] | None = None, *, shards: Iterable[tuple[str, bytes]] = ()
    ) -> None:
        super().__init__(params)
        self._shards = [data for _sha256, data in sorted(shards, key=lambda shard: shard[0])]
        self._windows = Windows([len(data) for data in self._shards], self.params["seq_len"] + 1, self.name,
                               unit="bytes")

    @classmethod
    def _check_params(cls, params: dict[str, Any]) -> None:
        super()._check_params(params)
        for key in ("d_model", "n_layers", "n_heads", "seq_len"):
            require_positive_int(params, key)
        if params["d_model"] % params["n_heads"]:
            raise ConfigError(
                f"task.params.n_heads: must divide d_model (got n_heads={params['n_heads']}, "
                f"d_model={params['d_model']})"
            )

    def fresh_model(self) -> nn.Module:
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p["init_seed"])
            return CharLM(
                d_model=p["d_model"], n_layers=p["n_layers"], n_heads=p["n_heads"], seq_len=p["seq_len"]
            )

    def make_batch(
        self, data_seed: bytes, account_id: str, epoch: int, step: int, batch_size: int
    ) -> torch.Tensor:
        """A (batch_size, seq_len + 1) tensor of byte values."""
        length = self.params["seq_len"] + 1
        drawn = self._windows.draw(data_seed, account_id, epoch, step, batch_size, label=b"charlm/windows")
        return torch.tensor([list(self._shards[shard][offset:offset + length]) for shard, offset in drawn],
                            dtype=torch.long)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch[:, :-1])
        return F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), batch[:, 1:].reshape(-1))

    def tokens_per_sample(self) -> int:
        return self.params["seq_len"]
