"""Distributed data parallel plumbing: the process group torchrun describes, and small collectives.

``torchrun --nproc_per_node=N -m singleshot TASK train ...`` starts N processes with the
environment variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``. :func:`init_distributed` joins that group (NCCL for CUDA devices, gloo for CPU)
and returns the device this process should use (``cuda:<LOCAL_RANK>`` for CUDA). Without those
variables (a plain ``singleshot ...``) nothing is initialised and every helper here behaves as
for a single process: rank 0 of a world of size 1, no-op barrier, identity reductions.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from singleshot.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "init_distributed",
    "is_distributed",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "barrier",
    "all_reduce_mean",
    "broadcast_object",
    "all_gather_objects",
    "no_sync_unless",
    "cleanup",
]


def _env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE: expected an integer, got {os.environ['WORLD_SIZE']!r}") from None


def init_distributed(device: str = "cpu", timeout_s: float = 1800.0) -> str:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1; return this process's device.

    ``device`` ``"cuda"`` (or ``"cuda:k"``) becomes ``cuda:<LOCAL_RANK>`` with the NCCL backend;
    any other device keeps its name and uses gloo. Calling it again is harmless.
    """
    world = _env_world_size()
    if world <= 1:
        return device
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r}: CUDA is not available to process LOCAL_RANK={local_rank}")
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s))
        logger.info("joined process group: rank %d of %d (%s, device %s)", dist.get_rank(), world, backend, device)
    return device


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0: the process that writes files and shows progress."""
    return get_rank() == 0


def _nccl() -> bool:
    return is_distributed() and dist.get_backend() == "nccl"


def barrier() -> None:
    """Wait until every process gets here (no-op for one process)."""
    if not is_distributed():
        return
    if _nccl():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The element-wise mean of ``tensor`` over processes (a new tensor; the input is unchanged).

    With NCCL the tensor must live on this process's CUDA device; with gloo on the CPU.
    """
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of process ``src`` on every process (picklable objects; identity for one process)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """The list of every process's ``obj``, indexed by rank (``[obj]`` for one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def no_sync_unless(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager[Any]:
    """``model.no_sync()`` for a DDP model when ``sync`` is false (an accumulation micro-batch
    whose gradients need not be all-reduced yet), else a no-op context."""
    if not sync and isinstance(model, DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def cleanup() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
