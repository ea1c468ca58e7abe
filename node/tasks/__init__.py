"""Tasks: a model plus the deterministic recipe for the data each account trains on.

>>> task = get_task("synthetic", {"hidden": 64})
>>> model = task.build_model()
>>> batch = task.make_batch(b"swarm seed", account_id, epoch=3, step=0, batch_size=32)
>>> task.loss(model, batch).backward()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from potluck.errors import ConfigError
from potluck.node.tasks.base import TaskBase, derive_sample_seed
from potluck.node.tasks.charlm import CharLM, CharLMTask, load_shards
from potluck.node.tasks.lm import LMTask
from potluck.node.tasks.synthetic import SyntheticTask

TASKS: dict[str, type[TaskBase]] = {task.name: task for task in (SyntheticTask, CharLMTask, LMTask)}


def get_task(
    name: str, params: Mapping[str, Any] | None = None, *, shards: Iterable[tuple[str, bytes]] | None = None,
    initial_state: bytes | None = None,
) -> TaskBase:
    """The task called `name`, bound to validated `params` (and, for text tasks, verified shards; for a
    resumed swarm, the checkpoint its model starts from, safetensors bytes)."""
    if name not in TASKS:
        raise ConfigError(f"task.name: unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    task_class = TASKS[name]
    if task_class in (CharLMTask, LMTask):
        task = task_class(params, shards=shards or ())
    elif shards:
        raise ConfigError(f"task.data: task {name} generates its own data and takes no shards")
    else:
        task = task_class(params)
    if initial_state is not None:
        task.initial_state = _initial_state(task, initial_state)
    return task


def _initial_state(task: TaskBase, data: bytes) -> dict:
    from safetensors.torch import load

    try:
        tensors = load(data)
        task.fresh_model().load_state_dict(tensors)
    except Exception as e:  # not safetensors, or not this model's tensors
        raise ConfigError(f"the swarm's initial state does not fit task {task.name}: {str(e).splitlines()[0]}") \
            from None
    return tensors


__all__ = [
    "TASKS",
    "CharLM",
    "CharLMTask",
    "LMTask",
    "SyntheticTask",
    "TaskBase",
    "derive_sample_seed",
    "get_task",
    "load_shards",
]
