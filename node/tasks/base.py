"""What every task (a model plus the recipe for its data) provides, and how its data is derived.

A task object binds validated parameters (and, for tasks that read text, the verified data
shards). The data a node trains on at (epoch, step) is not its choice: it is derived with a keyed
hash from the swarm's data seed, the account id, the epoch and the step, so anyone holding the
same inputs rebuilds the exact batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from potluck.draw import derive_sample_seed, random_bytes, uniform_indices
from potluck.errors import ConfigError

__all__ = ["TaskBase", "derive_sample_seed", "random_bytes", "require_positive_int", "uniform_floats",
           "uniform_indices"]


def uniform_floats(seed: bytes, shape: tuple[int, ...], *, label: bytes = b"") -> torch.Tensor:
    """Floats in [-1, 1) derived from `seed` bit-exactly on every platform (no torch RNG involved)."""
    count = 1
    for size in shape:
        count *= size
    raw = torch.frombuffer(bytearray(random_bytes(seed, 4 * count, label=label)), dtype=torch.int32)
    # int32 / 2**31 is exact in float64 and lands in [-1, 1); float32 rounding is deterministic too.
    return (raw.to(torch.float64) / 2**31).to(torch.float32).reshape(shape)


class TaskBase(ABC):
    """A model and its data recipe, bound to validated parameters.

    Subclasses set `name`, `param_defaults` (int/float/str/bool scalars) and may add task-specific
    checks in `_check_params`.
    """

    name: ClassVar[str]
    param_defaults: ClassVar[dict[str, int | float | str | bool]]
    # The dtype a node on CUDA trains in with autocast (None: float32). The verifier recomputes on CPU in
    # float32, within tolerances measured on CPU windows: GPU windows' tolerance is not measured yet.
    cuda_autocast: ClassVar[torch.dtype | None] = None

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = self.validate_params(params or {})
        # A resumed swarm starts from a checkpoint's tensors (`swarm start --resume`), not from init_seed.
        self.initial_state: dict[str, torch.Tensor] | None = None

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return the defaults overlaid with `params`, or raise ConfigError naming the first bad key."""
        unknown = sorted(set(params) - set(cls.param_defaults))
        if unknown:
            known = ", ".join(sorted(cls.param_defaults))
            raise ConfigError(
                f"task.params.{unknown[0]}: unknown parameter for task {cls.name} (known: {known})"
            )
        merged = dict(cls.param_defaults)
        for key, value in params.items():
            merged[key] = _coerce(key, value, cls.param_defaults[key])
        cls._check_params(merged)
        return merged

    @classmethod
    def _check_params(cls, params: dict[str, Any]) -> None:
        """Range checks; subclasses extend them and raise ConfigError("task.params.<key>: ...")."""
        if params.get("init_seed", 0) < 0:
            seed = params["init_seed"]
            raise ConfigError(f"task.params.init_seed: must be a non-negative integer (got {seed!r})")

    def build_model(self) -> torch.nn.Module:
        """The swarm's starting model, bit-identical on every peer: fresh from init_seed, or the state a
        resumed swarm starts from."""
        model = self.fresh_model()
        if self.initial_state is not None:
            model.load_state_dict(self.initial_state)
        return model

    @abstractmethod
    def fresh_model(self) -> torch.nn.Module:
        """A freshly initialised model; the same parameters give bit-identical weights on every peer."""

    @abstractmethod
    def make_batch(self, data_seed: bytes, account_id: str, epoch: int, step: int, batch_size: int) -> Any:
        """The batch `account_id` trains on at micro-step `step` of `epoch` (see derive_sample_seed)."""

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Mean training loss of `model` on `batch`, a scalar tensor."""

    @abstractmethod
    def tokens_per_sample(self) -> int:
        """How many tokens one sample holds (1 for non-sequence tasks)."""

    def flops_per_sample(self) -> int:
        """Training FLOPs for one sample: 6 x parameters x tokens (forward plus backward)."""
        return 6 * self.num_parameters() * self.tokens_per_sample()

    def num_parameters(self) -> int:
        if getattr(self, "_num_parameters", None) is None:
            self._num_parameters = sum(p.numel() for p in self.build_model().parameters())
        return self._num_parameters

    @staticmethod
    def batch_to(batch: Any, device: torch.device | str) -> Any:
        """Move a batch (a tensor or a tuple of tensors) to `device`."""
        if isinstance(batch, torch.Tensor):
            return batch.to(device)
        return tuple(t.to(device) for t in batch)


def require_positive_int(params: Mapping[str, Any], key: str) -> None:
    if params[key] <= 0:
        raise ConfigError(f"task.params.{key}: must be a positive integer (got {params[key]!r})")


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check `value` has the type of `default`; ints are accepted for floats, nothing else converts."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"task.params.{key}: must be true or false (got {value!r})")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"task.params.{key}: must be an integer (got {value!r})")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            return float(value)
        raise ConfigError(f"task.params.{key}: must be a number (got {value!r})")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"task.params.{key}: must be a string (got {value!r})")
    raise TypeError(f"param_defaults[{key!r}] has unsupported type {kind.__name__}")
