"""Distributed (DDP) training of interventions.

Recipe (``torchrun --nproc-per-node N train.py``; gloo on CPUs, NCCL on GPUs)::

    torch.distributed.init_process_group("nccl")          # or "gloo"
    pvm = pv.IntervenableModel(config, model)            # same seed / weights on every rank
    ddp = pv.distributed_model(pvm)                       # = DDP(pvm), model weights ignored
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
    for batch in shard_of_my_rank:                        # e.g. a DistributedSampler
        _, out = ddp(batch["base"], [batch["source"]], unit_locations=...)
        loss(out, batch).backward()                       # gradients averaged over ranks
        opt.step(); opt.zero_grad()
    if rank == 0:
        pvm.save_intervention("ckpt")                     # resume: load_intervention("ckpt")

Wrap the IntervenableModel, never one intervention: ``DDP(pvm.interventions[key])`` is never
called by the IntervenableModel, so its gradients are silently not synchronized (the original
has the same trap). :func:`check_not_wrapped_alone` refuses that setup at the first training
call with a message saying what to wrap. HF ``Trainer`` / accelerate wrap the module they are
given in DDP, so give them the IntervenableModel.
"""

from __future__ import annotations

import gc
import weakref
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import DistributedError

if TYPE_CHECKING:
    from .intervenable import IntervenableModel


def distributed_model(pvm: IntervenableModel, **ddp_kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(pvm)`` that synchronizes only what trains: the wrapped
    model's frozen weights and buffers are neither broadcast nor reduced (on a large model
    that broadcast would cost as much as loading it again). ``ddp_kwargs`` go to DDP."""
    from torch.nn.parallel import DistributedDataParallel

    ignore = [f"model.{n}" for n, p in pvm.model.named_parameters() if not p.requires_grad]
    ignore += [f"model.{n}" for n, _ in pvm.model.named_buffers()]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(pvm, ignore)
    return DistributedDataParallel(pvm, **ddp_kwargs)


def _distributed_training(pvm: IntervenableModel) -> bool:
    if not torch.is_grad_enabled():
        return False
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    return any(p.requires_grad for p in pvm.get_trainable_parameters())


_CHECKED: weakref.WeakSet[nn.Module] = weakref.WeakSet()  # models already checked


def check_not_wrapped_alone(pvm: IntervenableModel) -> None:
    """Once per IntervenableModel, on its first call that trains under torch.distributed:
    refuse an intervention wrapped alone in DDP (its gradients would never be synchronized)."""
    if pvm in _CHECKED or not _distributed_training(pvm):
        return
    _CHECKED.add(pvm)
    from torch.nn.parallel import DistributedDataParallel

    ours = {id(i): key for key, i in pvm.interventions.items()}
    for obj in gc.get_objects():  # once: a scan of live objects, not per call
        if isinstance(obj, DistributedDataParallel) and id(obj.module) in ours:
            key = ours[id(obj.module)]
            raise DistributedError(
                f"intervention {key!r} is wrapped alone in DistributedDataParallel, but the "
                "IntervenableModel calls the intervention itself, so its gradients would never "
                "be synchronized across ranks; wrap the IntervenableModel instead: "
                "ddp = pv.distributed_model(pvm) (or DDP(pvm)) and call ddp(base, sources, ...)"
            )


__all__ = ["check_not_wrapped_alone", "distributed_model"]
