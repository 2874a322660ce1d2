"""Dataset jobs over several processes with ``torch.distributed`` (``torchrun``; gloo on
CPU, NCCL on GPUs): records are sharded across ranks, each rank computes its shard, and
the results are gathered on rank 0. Without an initialised process group everything is one
process (rank 0 of 1)."""

from __future__ import annotations

import os
from typing import Any

import torch


def is_distributed() -> bool:
    """True inside an initialized torch.distributed process group (torch.distributed is
    imported only here, so single-process use never loads it)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if not is_distributed():
        return 0, 1
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def shard(indices: list[int]) -> list[int]:
    """This rank's records: every ``world``-th, starting at ``rank``."""
    rank, world = rank_and_world()
    return indices[rank::world]


def barrier() -> None:
    """Wait for every rank; a no-op outside a process group."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def gather_to_rank0(items: list[Any]) -> list[Any] | None:
    """All ranks' ``items`` concatenated on rank 0 (None on the other ranks)."""
    if not is_distributed():
        return items
    import torch.distributed as dist

    rank, world = rank_and_world()
    out: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(items, out, dst=0)
    if rank != 0:
        return None
    return [x for part in out for x in part]


def init_from_env() -> bool:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) initialise the default
    process group once: NCCL when CUDA is available, else gloo. Returns whether this
    process is part of a multi-process run."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return True


def local_device() -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
