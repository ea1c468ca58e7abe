"""What this machine can train on: the device to use and a batch size that fits it."""

from __future__ import annotations

import logging

import torch

from potluck.errors import ConfigError

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
CPU_BATCH_SIZE = 32
LARGEST_GPU_BATCH = 1024


def pick_device(requested: str) -> str:
    """`auto` picks CUDA when present; asking for CUDA on a machine without it is an error."""
    if requested not in DEVICES:
        raise ConfigError(f"--device: must be one of {', '.join(DEVICES)} (got {requested!r})")
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise ConfigError("--device cuda: no CUDA device is available on this machine (use --device cpu or auto)")
    return "cuda" if requested == "cuda" or (requested == "auto" and has_cuda) else "cpu"


def pick_batch_size(task, device: str, *, requested: int | None, target_batch_size: int) -> int:
    """The micro-batch size to train with: `requested`, or the largest that fits (capped by the swarm's target).

    Runs in the training worker, never in the supervisor: it touches the device.
    """
    ceiling = max(1, target_batch_size)
    if requested is not None:
        if requested <= 0:
            raise ConfigError(f"--batch-size: must be a positive integer (got {requested})")
        return min(requested, ceiling)
    if device == "cpu":
        return min(CPU_BATCH_SIZE, ceiling)
    model = task.build_model().to(device)
    size, fits = 8, 0
    while size <= min(LARGEST_GPU_BATCH, ceiling):
        try:
            batch = task.batch_to(task.make_batch(b"probe", "probe", 0, 0, size), device)
            task.loss(model, batch).backward()
            fits = size
            size *= 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    if fits == 0:
        raise ConfigError("this GPU cannot fit even a batch of 8 samples of this task")
    logger.info("picked batch size %d for %s", fits, torch.cuda.get_device_name(device))
    return fits
