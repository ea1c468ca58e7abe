"""`lm`: a causal language model of the Llama architecture (Hugging Face `transformers`), trained on
the community's token shards (`potluck data prepare`, potluck/token_shards.py).

A sample is a window of seq_len + 1 tokens that never crosses a shard's end, drawn by keyed hash
as `charlm` draws byte windows. The vocabulary is the swarm's tokenizer's (`vocab_size`, which the
lead copies from `data prepare`'s output); a shard holding a larger token id is refused.

FLOPs per sample, counted as the literature does: 6 × parameters × tokens for the weights' forward
and backward passes (Kaplan et al. 2020), plus 12 × layers × hidden size × seq_len² for attention
scores and their backward (PaLM, Chowdhery et al. 2022, appendix B), with no discount for the causal
mask. Embeddings count among the parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from potluck.errors import ConfigError
from potluck.node.tasks.base import TaskBase, require_positive_int
from potluck.token_shards import decode_shard, token_width
from potluck.windows import Windows


class LMTask(TaskBase):
    """Next-token prediction with a Llama decoder on verified token shards."""

    name = "lm"
    cuda_autocast = torch.bfloat16  # as Llama trains; on CPU it trains in float32
    param_defaults = {
        "vocab_size": 8192,
        "hidden_size": 128,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 0,  # 0: as many as num_heads (no grouped-query attention)
        "intermediate_size": 0,  # 0: 4 × hidden_size
        "seq_len": 128,
        "rope_theta": 10000.0,
        "init_seed": 0,
    }

    def __init__(self, params: Mapping[str, Any] | None = None, *,
                 shards: Iterable[tuple[str, bytes]] = ()) -> None:
        super().__init__(params)
        self._shards: list[np.ndarray] = []
        for sha256, data in sorted(shards, key=lambda shard: shard[0]):
            tokens = decode_shard(data, f"dataset shard {sha256[:12]}…")
            if tokens.itemsize != token_width(self.params["vocab_size"]):  # the data credit counts tokens so
                raise ConfigError(f"dataset shard {sha256[:12]}…: {tokens.itemsize}-byte tokens, but a vocabulary of "
                                  f"{self.params['vocab_size']} is stored in {token_width(self.params['vocab_size'])}")
            if len(tokens) and int(tokens.max()) >= self.params["vocab_size"]:
                raise ConfigError(f"dataset shard {sha256[:12]}…: holds token id {int(tokens.max())}, beyond "
                                  f"task.params.vocab_size = {self.params['vocab_size']}")
            self._shards.append(tokens)
        self._windows = Windows([len(t) for t in self._shards], self.params["seq_len"] + 1, self.name)

    @classmethod
    def _check_params(cls, params: dict[str, Any]) -> None:
        super()._check_params(params)
        for key in ("vocab_size", "hidden_size", "num_layers", "num_heads", "seq_len"):
            require_positive_int(params, key)
        for key in ("num_kv_heads", "intermediate_size"):
            if params[key] < 0:
                raise ConfigError(f"task.params.{key}: must be 0 (derived) or a positive integer (got {params[key]})")
        if params["hidden_size"] % params["num_heads"] or (params["hidden_size"] // params["num_heads"]) % 2:
            raise ConfigError(f"task.params.num_heads: must divide hidden_size into heads of an even size (got "
                              f"num_heads={params['num_heads']}, hidden_size={params['hidden_size']})")
        if params["num_heads"] % (params["num_kv_heads"] or params["num_heads"]):
            raise ConfigError(f"task.params.num_kv_heads: must divide num_heads (got {params['num_kv_heads']})")
        if params["rope_theta"] <= 0:
            raise ConfigError(f"task.params.rope_theta: must be positive (got {params['rope_theta']})")

    def model_config(self):
        """The model's `transformers.LlamaConfig` (also what `model export` writes as config.json)."""
        from transformers import LlamaConfig

        p = self.params
        return LlamaConfig(
            vocab_size=p["vocab_size"], hidden_size=p["hidden_size"], num_hidden_layers=p["num_layers"],
            num_attention_heads=p["num_heads"], num_key_value_heads=p["num_kv_heads"] or p["num_heads"],
            intermediate_size=p["intermediate_size"] or 4 * p["hidden_size"], max_position_embeddings=p["seq_len"],
            rope_theta=p["rope_theta"], tie_word_embeddings=False, use_cache=False, attention_dropout=0.0,
        )

    def fresh_model(self) -> nn.Module:
        from transformers import LlamaForCausalLM

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.params["init_seed"])
            return LlamaForCausalLM(self.model_config())

    def make_batch(self, data_seed: bytes, account_id: str, epoch: int, step: int, batch_size: int) -> torch.Tensor:
        """A (batch_size, seq_len + 1) tensor of token ids."""
        length = self.params["seq_len"] + 1
        drawn = self._windows.draw(data_seed, account_id, epoch, step, batch_size, label=b"lm/windows")
        return torch.from_numpy(np.stack([self._shards[shard][offset:offset + length].astype(np.int64)
                                          for shard, offset in drawn]))

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=batch[:, :-1]).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))

    def tokens_per_sample(self) -> int:
        return self.params["seq_len"]

    def flops_per_sample(self) -> int:
        p = self.params
        return super().flops_per_sample() + 12 * p["num_layers"] * p["hidden_size"] * p["seq_len"] ** 2
