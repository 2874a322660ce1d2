"""Packed sweeps over many jobs (prompts of different lengths) in shared batches.

A :class:`Job` is one sweep (base inputs, source inputs, cells, metric), as
:func:`.cells.run_cells` takes. :func:`run_jobs` evaluates the cells of many jobs together:

* the source runs of all jobs are collected in one forward and the base runs in another,
  left-padded to the longest prompt with a padding-aware attention mask and position ids
  (:mod:`.padded`; models that cannot pad share forwards between jobs of equal length), and
  each job's rows are planned as :func:`.cells.run_cells` plans them (shared-prefix rows
  dropped);
* with a layer adapter (:mod:`.stack`), every job is left-padded to the longest prompt: the
  last position is the last token of every row. Rows of all jobs are bucketed by first
  position (padded coordinates) and share layer calls; each row attends only to its own
  prompt's cached keys/values (a per-row mask) with its own positions (per-row rotary
  position ids). Pad query positions attend to themselves only, so they stay finite and are
  never read;
* without an adapter, rows of jobs of equal length share whole-model runs.

Every cell equals its single-job value (float reassociation only, ~1e-7).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..hooks import HookSession
from .cells import (
    Cell,
    SweepRuns,
    forward_last,
    input_shape,
    progress_bar,
    site_devices,
    sweep_inputs,
    sweep_stack,
)
from .padded import KV, PaddedRuns, collect_jobs
from .patches import RowPatches, packed_entries
from .planning import OVERHEAD_TOKENS, OVERHEAD_TOKENS_DEFAULT, bucket_rows, rows_per_chunk
from .stack import Placed, PrefixKV, moved


@dataclass
class Job:
    """One sweep: ``base`` ``(nb, T)`` and ``source`` ``(1 or nb, T)`` inputs (ids tensor or
    dict with ``input_ids`` / ``inputs_embeds``), its cells and its metric; ``diff_start``:
    the first position where base and source inputs differ, when the ids do not show it
    (see :func:`.cells.run_cells`)."""

    base: Any
    source: Any
    cells: Sequence[Cell]
    metric: Callable[[torch.Tensor], torch.Tensor]
    diff_start: int | Sequence[int] | None = None


@dataclass(frozen=True)
class _Row:
    job: int
    cell: int  # index into the job's canonical cells
    b: int  # the job's base example
    start: int  # first layer computed
    q: int  # first position computed, padded coordinates


class _Prepared(SweepRuns):
    """One job's collected runs and planned rows (:class:`.cells.SweepRuns`)."""

    def __init__(self, job: Job, index: int, n_layers: int | None) -> None:
        super().__init__(
            job.base, job.source, job.cells, job.metric, n_layers, f"job {index}: ",
            diff_start=job.diff_start,
        )  # fmt: skip

    def finish(self, model, sites, src, store, src_last, base_last) -> None:
        super().finish(model, sites, src, store, src_last, base_last)
        self.rows = [(r.cell, r.b, r.start, r.q) for r in self.rows]
        self.src_value, self.base_value = float(self.src_value), float(self.base_value)


def run_jobs(
    model: nn.Module,
    jobs: Sequence[Job],
    *,
    method: str = "auto",
    max_rows: int | None = None,
    memory_budget: int = 1 << 29,
    progress: bool | Any = False,
    overhead_tokens: float | None = None,
) -> list[tuple[torch.Tensor, float, float]]:
    """For each job: the metric of every cell (mean over its base examples), the base and
    the source metric, as :func:`.cells.run_cells` returns for that job alone. ``method``:
    "auto" (packed layer adapter when the family has one), "stack" or "full" (whole-model
    runs, rows of equal-length jobs packed)."""
    if not jobs:
        return []
    T = max(input_shape(sweep_inputs(j.base))[1] for j in jobs)
    stack = sweep_stack(model, T, method)
    sites: dict = {}
    with torch.no_grad():
        preps = [_Prepared(j, i, stack.num_layers if stack else None) for i, j in enumerate(jobs)]
        padded = collect_jobs(model, preps, stack, sites, T)
        device = preps[0].values.device
        overhead = overhead_tokens
        if overhead is None:
            overhead = OVERHEAD_TOKENS.get(torch.device(device).type, OVERHEAD_TOKENS_DEFAULT)
        if stack is not None:
            packed = _Packed(preps, sites, stack, T, padded)
            _run_stacked(model, stack, preps, sites, packed, max_rows, memory_budget, overhead,
                         progress)  # fmt: skip
        else:
            _run_full(model, preps, sites, max_rows, memory_budget, progress)
    return [(p.values.mean(dim=1), p.base_value, p.src_value) for p in preps]


def _pad(tensors: list[torch.Tensor], offsets: list[int], T: int, dim: int) -> torch.Tensor:
    """Left-pad each tensor (rows first) to ``T`` along ``dim`` with zeros and concatenate."""
    first = tensors[0]
    shape = list(first.shape)
    shape[0], shape[dim] = sum(t.shape[0] for t in tensors), T
    out = first.new_zeros(shape)
    row = 0
    for t, off in zip(tensors, offsets):
        out[row : row + t.shape[0]].narrow(dim, off, t.shape[dim]).copy_(t)
        row += t.shape[0]
    return out


class _Packed:
    """Every job's stores, left-padded to ``T`` and concatenated over jobs: base rows
    ``boff[j] + b``, source rows ``soff[j] + s`` (``soff_key[key][j] + s`` for a site some
    jobs lack). ``padded``: the runs already collected as one left-padded batch."""

    def __init__(self, preps, sites, stack, T, padded: PaddedRuns | None = None) -> None:
        offs = [T - p.seq for p in preps]
        self.off, self.T = offs, T
        self.boff = _cumsum([p.nb for p in preps])
        self.soff = _cumsum([p.ns for p in preps])
        if padded is not None:
            self.src = {key: padded.src[key] for key in sites}
            self.soff_key = dict.fromkeys(sites, self.soff)
            self.row_off = padded.row_off.to(preps[0].values.device)
            self.inputs, self.keys, self.values = padded.inputs, padded.keys, padded.values
            return
        self.src = {
            key: _pad([p.src[key] for p in preps if key in p.src],
                      [o for o, p in zip(offs, preps) if key in p.src], T, 1)
            for key in sites
        }  # fmt: skip
        self.soff_key = {
            key: _cumsum([p.ns if key in p.src else 0 for p in preps]) for key in sites
        }
        device = preps[0].values.device
        self.row_off = torch.tensor(
            [o for o, p in zip(offs, preps) for _ in range(p.nb)], device=device
        )
        if stack is None:
            return
        self.inputs, self.keys, self.values = [], [], []
        for k in range(stack.num_layers):
            self.inputs.append(_pad([p.store[("__in__", k)] for p in preps], offs, T, 1))
            self.keys.append(_pad([p.store[(KV[0], k)] for p in preps], offs, T, 2))
            self.values.append(_pad([p.store[(KV[1], k)] for p in preps], offs, T, 2))


def _cumsum(sizes: list[int]) -> list[int]:
    out, total = [], 0
    for s in sizes:
        out.append(total)
        total += s
    return out


def _store_values(chunk, preps, logits) -> None:
    """Each job's metric on its rows of the chunk: one call per run of consecutive rows of
    one job, on a slice (a view) of the logits, not a gathered copy of ``(rows, vocab)``."""
    parts: dict[int, list[torch.Tensor]] = defaultdict(list)
    i = 0
    while i < len(chunk):
        j, end = chunk[i].job, i + 1
        while end < len(chunk) and chunk[end].job == j:
            end += 1
        parts[j].append(preps[j].metric(logits[i:end]).float())
        i = end
    rows: dict[int, list[_Row]] = defaultdict(list)
    for r in chunk:
        rows[r.job].append(r)
    for j, vals in parts.items():
        prep = preps[j]
        ci = torch.tensor([r.cell for r in rows[j]], device=prep.values.device)
        bi = torch.tensor([r.b for r in rows[j]], device=prep.values.device)
        prep.values[ci, bi] = torch.cat(vals).to(prep.values.device)


def _run_stacked(model, stack, preps, sites, packed, max_rows, budget, overhead, progress):
    T = packed.T
    rows = [
        _Row(j, c, b, s, q + packed.off[j]) for j, p in enumerate(preps) for c, b, s, q in p.rows
    ]
    n_layers = stack.num_layers
    plan = []
    for q_start, members in bucket_rows(
        rows, T, n_layers, lambda n: rows_per_chunk(model, n, max_rows, budget), overhead
    ):
        members.sort(key=lambda r: (r.start, r.job, r.cell, r.b))
        per = rows_per_chunk(model, T - q_start, max_rows, budget)
        plan.extend((q_start, members[i : i + per]) for i in range(0, len(members), per))
    bar = progress_bar(progress, sum((n_layers - c[0].start) * len(c) * (T - q) for q, c in plan))
    on_site = site_devices(model, sites, packed.inputs[0].device)
    for q_start, chunk in plan:
        logits = _stack_chunk(stack, preps, sites, packed, q_start, chunk, bar, on_site)
        _store_values(chunk, preps, logits)
    if bar is not None and progress is True:
        bar.close()


def _stack_chunk(stack, preps, sites, packed, q_start, chunk, bar, on_site):
    T, q_len = packed.T, packed.T - q_start
    sample = packed.inputs[0]
    device, dtype = sample.device, sample.dtype
    gb = torch.tensor([packed.boff[r.job] + r.b for r in chunk], device=device)
    off = packed.row_off[gb]
    q = torch.arange(q_start, T, device=device)
    k = torch.arange(T, device=device)
    allowed = (k[None, None, :] <= q[None, :, None]) & (
        (k[None, None, :] >= off[:, None, None]) | (k[None, None, :] == q[None, :, None])
    )
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]  # (R, 1, q_len, T)
    pos = (q[None, :] - off[:, None]).clamp(min=0)  # (R, q_len)
    rotary = stack.position_embeddings(pos, dtype)  # None, (cos, sin) or {layer type: ...}
    # the mask / rotary tables / positions / row indices: one copy per layer device per call
    per_call = Placed((mask, rotary, pos, gb))
    patches = RowPatches(
        packed_entries(chunk, preps, packed), sites, packed.src, T, q_start, on_site
    )
    starts = [r.start for r in chunk]
    hidden, n_active = None, 0
    with HookSession() as session:
        patches.install(session)
        if q_len > 1:  # the last layer: attention output and MLP of the last position only
            for module in stack.tail_modules(stack.num_layers - 1):
                session.on_input(module, lambda t: t[:, -1:])
        for layer in range(starts[0], stack.num_layers):
            here = stack.layer_devices[layer]
            mask_l, rotary_l, pos_l, gb_l = per_call.on(here)
            n_new = 0
            while n_active + n_new < len(starts) and starts[n_active + n_new] == layer:
                n_new += 1
            if n_new:
                inputs = packed.inputs[layer]
                add = moved(
                    inputs[gb_l[n_active : n_active + n_new].to(inputs.device), q_start:], here
                )
                hidden = add if hidden is None else torch.cat([moved(hidden, here), add], dim=0)
                n_active += n_new
            rows = gb_l[:n_active].to(packed.keys[layer].device)
            kv = PrefixKV(
                moved(packed.keys[layer][rows, :, :q_start], here),
                moved(packed.values[layer][rows, :, :q_start], here),
            )
            kwargs: dict[str, Any] = {"attention_mask": mask_l[:n_active]}
            if rotary is not None:
                kwargs["position_embeddings"] = _first_rows(rotary_l, n_active)
            if stack.kind != "positional":
                kwargs["position_ids"] = pos_l[:n_active]
            hidden = stack.run_layer(layer, hidden, kv, kwargs)
            if bar is not None:
                bar.update(n_active * q_len)
    return stack.logits(hidden[:, -1])


def _first_rows(x: Any, n: int) -> Any:
    """The first ``n`` rows of a tensor, or of each tensor of a tuple / dict of them."""
    if isinstance(x, dict):
        return {k: _first_rows(v, n) for k, v in x.items()}
    if isinstance(x, tuple):
        return tuple(_first_rows(v, n) for v in x)
    return x[:n]


def _run_full(model, preps, sites, max_rows, budget, progress):
    """Whole-model runs: rows of jobs of equal length share batches (no padding)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for j, p in enumerate(preps):
        groups[p.seq].append(j)
    plan = []
    for seq, members in sorted(groups.items()):
        rows = [_Row(i, c, b, s, q) for i, j in enumerate(members) for c, b, s, q in preps[j].rows]
        per = rows_per_chunk(model, seq, max_rows, budget)
        plan.extend((members, rows[i : i + per]) for i in range(0, len(rows), per))
    bar = progress_bar(progress, sum(len(c) for _, c in plan))
    packs: dict[int, _Packed] = {}
    for members, chunk in plan:
        group = [preps[j] for j in members]
        seq = group[0].seq
        if seq not in packs:
            packs = {seq: _Packed(group, sites, None, seq)}  # one group's stores at a time
        device = group[0].values.device
        entries = packed_entries(chunk, group, packs[seq])
        on_site = site_devices(model, sites, device)
        patches = RowPatches(entries, sites, packs[seq].src, seq, 0, on_site)
        inputs = _gather_inputs(chunk, group)
        with HookSession() as session:
            patches.install(session)
            logits = forward_last(model, inputs)[1]
        _store_values(chunk, group, logits)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None and progress is True:
        bar.close()


def _gather_inputs(chunk, preps) -> dict[str, torch.Tensor]:
    """The base rows of a chunk of equal-length jobs in chunk order (rows of one job are
    contiguous in a chunk: one ``index_select`` per job)."""
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    i = 0
    while i < len(chunk):
        j = chunk[i].job
        n = 1
        while i + n < len(chunk) and chunk[i + n].job == j:
            n += 1
        for key, value in preps[j].base.items():
            b = torch.tensor([r.b for r in chunk[i : i + n]], device=value.device)
            parts[key].append(value.index_select(0, b))
        i += n
    return {key: torch.cat(v) for key, v in parts.items()}
