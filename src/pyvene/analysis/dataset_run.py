"""The driver shared by dataset jobs (:mod:`.dataset_trace`, :mod:`.dataset_patch`): shard
the pending records across ``torch.distributed`` ranks, process them in batches, stream each
batch to the run folder (:mod:`.store`) or keep it in memory, show a progress bar with ETA,
and gather everything on rank 0."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from . import distributed as dist
from .store import RunStore

Batch = tuple[list[dict[str, Any]], dict[str, torch.Tensor]]


def run_dataset(
    kind: str,
    params: dict[str, Any],
    n_records: int,
    process: Callable[[list[int]], Batch],
    *,
    out_dir: str | os.PathLike[str] | None,
    records_per_batch: int,
    progress: bool,
    on_batch: Callable[[list[int]], None] | None,
    desc: str,
) -> Batch | None:
    """Entries (sorted by index) and tensors of every record, on rank 0 (None elsewhere).

    ``process(indices)`` computes one batch. With ``out_dir`` each batch is written as it
    finishes, records already in the folder are skipped (resume), and the result is read
    back from the folder (so it includes the records of earlier runs)."""
    if records_per_batch < 1:
        raise ValueError(f"records_per_batch must be at least 1 (got {records_per_batch})")
    store = RunStore(out_dir, kind, params) if out_dir is not None else None
    rank, _ = dist.rank_and_world()
    done: set[int] = set()
    if store is not None:
        if rank == 0:
            store.open()
        dist.barrier()
        store.open(write=False)
        done = store.done()
        dist.barrier()  # every rank has read the done set before any rank writes
    mine = dist.shard([i for i in range(n_records) if i not in done])
    bar = _bar(progress and rank == 0, len(mine), desc)
    entries: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    try:
        for start in range(0, len(mine), records_per_batch):
            batch = mine[start : start + records_per_batch]
            got_entries, got_tensors = process(batch)
            if store is not None:
                store.write(batch[0], got_entries, got_tensors)
            else:
                entries.extend(got_entries)
                tensors.update(got_tensors)
            if bar is not None:
                bar.update(len(batch))
            if on_batch is not None:
                on_batch(batch)
    finally:
        if bar is not None:
            bar.close()
    if store is not None:
        dist.barrier()
        return store.load() if rank == 0 else None
    gathered = dist.gather_to_rank0([(entries, tensors)])
    if gathered is None:
        return None
    entries = sorted((e for es, _ in gathered for e in es), key=lambda e: int(e["index"]))
    return entries, {k: v for _, ts in gathered for k, v in ts.items()}


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="record", dynamic_ncols=True)
