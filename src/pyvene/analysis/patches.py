"""The sweeps' patch hooks: every batch row of a chunk restores its cell's source activations
at its own positions and columns (rows differ in cell, positions, head and layers), written
with one flat ``index_copy_`` per hooked module (:func:`pyvene.gather.scatter_flat`); the last
layer's cut to the last position has its own subset (see :meth:`.stack.LayerStack.tail_modules`).

:func:`row_entries` (one sweep, :mod:`.cells`) and :func:`packed_entries` (many jobs
left-padded into one batch, :mod:`.packed`) list what each row patches; :class:`RowPatches`
turns the lists into per-module index tensors and hooks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

from ..gather import scatter_flat
from ..hooks import HookSession

# (component, layer, is_head) -> [(chunk row, source row, position, head or -1)]
Entries = dict[tuple[str, int, bool], list[tuple[int, int, int, int]]]


def row_entries(chunk: list, todo: list, ns: int) -> Entries:
    """What each row of a one-sweep chunk patches: its cell's positions from its first
    computed one on, at every layer of the cell (source row ``b``, or 0 for one source)."""
    lists: Entries = defaultdict(list)
    for r, row in enumerate(chunk):
        cell = todo[row.cell]
        srow = row.b if ns > 1 else 0
        pos = [p for p in cell.positions if p >= row.q]
        head = -1 if cell.head is None else cell.head
        for k in cell.layers:
            lists[(cell.component, k, cell.head is not None)].extend(
                (r, srow, p, head) for p in pos
            )
    return lists


def packed_entries(chunk: list, preps: list, packed: Any) -> Entries:
    """:func:`row_entries` for a chunk of many jobs: positions shifted by each job's left
    padding, source rows offset into the packed stores (``packed.soff_key``)."""
    lists: Entries = defaultdict(list)
    for r, row in enumerate(chunk):
        prep, off = preps[row.job], packed.off[row.job]
        cell = prep.todo[row.cell]
        s_local = row.b if prep.ns > 1 else 0
        head = -1 if cell.head is None else cell.head
        pos = [p + off for p in cell.positions if p + off >= row.q]
        for k in cell.layers:
            srow = packed.soff_key[(cell.component, k)][row.job] + s_local
            lists[(cell.component, k, cell.head is not None)].extend(
                (r, srow, p, head) for p in pos
            )
    return lists


class RowPatches:
    """The patches of one chunk per layer: for each (component, layer) and kind (whole
    component or one head) the flat destinations ``r * q_len + p - q_start`` in the chunk's
    activation (single elements when only some columns change), the source values, and the
    subset at the last position."""

    def __init__(
        self,
        entries: Entries,
        sites: dict,
        src: dict[Any, torch.Tensor],
        seq: int,
        q_start: int,
        device_of: Callable[[tuple[str, int]], torch.device],
    ) -> None:
        self.q_start, self.q_len, self.seq = q_start, seq - q_start, seq
        self.by_layer: dict[int, list[tuple[Any, tuple, tuple]]] = defaultdict(list)
        for (comp, k, is_head), items in entries.items():
            site, device = sites[(comp, k)], device_of((comp, k))  # the layer's device
            r, srow, p, head = torch.tensor(items, dtype=torch.long).T.contiguous()
            value = src[(comp, k)]
            rows = value.reshape(-1, value.shape[-1]).index_select(
                0, (srow * seq + p).to(value.device)
            )
            if is_head:
                cols = site.head_columns()[head]  # (N, head_dim)
                vals = rows.gather(1, cols.to(rows.device))
            elif site.cols is not None:
                cols = site.cols.expand(len(r), -1)
                vals = rows.index_select(1, site.cols.to(rows.device))
            else:
                cols, vals = None, rows
            last = p == seq - 1
            full = _spec(r * self.q_len + p - q_start, cols, vals, site.width, device)
            tail = _spec(r[last], None if cols is None else cols[last],
                         vals[last.to(vals.device)], site.width, device)  # fmt: skip
            self.by_layer[k].append((site, full, tail))

    def install(self, session: HookSession) -> None:
        """One hook per patched module on ``session``."""
        for specs in self.by_layer.values():
            for site, full, tail in specs:
                session.on(site.site.module, site.site.hook, _hook(full, tail, self.q_len))


def _spec(dst, cols, vals, width, device):
    """``(index, vals, whole)`` for :func:`scatter_flat` into the activation: rows of
    ``(rows * positions, width)``, or single elements when only some columns change."""
    if cols is not None:
        dst = (dst[:, None] * width + cols).reshape(-1)
        vals = vals.reshape(-1)
    return dst.to(device), vals.to(device), cols is None


def _hook(full, tail, q_len: int):
    def patch(act: torch.Tensor) -> torch.Tensor | None:
        n = act.shape[1]
        if n == q_len:
            dst, vals, whole = full
        elif n == 1:  # the last layer computes the last position only (see .stack)
            dst, vals, whole = tail
        else:
            raise RuntimeError(f"sweep patch: expected {q_len} positions, got {n}")
        if dst.numel() == 0:
            return None
        return scatter_flat(act, dst, vals, whole)

    return patch
