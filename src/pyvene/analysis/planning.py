"""Planning a sweep's batches: which (cell, base example) rows must be computed, how rows
with different first positions are bucketed (a cost model weighs a layer call's fixed overhead
against the positions a merged bucket recomputes), and how buckets are chunked to a memory
budget. :mod:`.cells` runs the plan."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import torch

# A layer call's fixed cost (Python, kernel launches), in token-layers of compute: weighs the
# call count against the positions a merged bucket recomputes. Measured on a 2-core CPU with
# SmolLM2-135M: ~1 ms per call against ~40 us per token-layer (16-48 time the same). On
# GPUs the calls dominate.
OVERHEAD_TOKENS = {"cpu": 32}
OVERHEAD_TOKENS_DEFAULT = 4096


@dataclass(frozen=True)
class Row:
    """A (cell, base example) row a sweep computes, from layer ``start`` and position ``q``."""

    cell: int  # index into the canonical cells
    b: int  # base example
    start: int  # first layer computed (stack)
    q: int  # first position not known to equal the base run


def plan_rows(todo, nb, sites, src, base, n_layers, diff_starts=None):
    """The rows to compute, and the (cell, b) rows that equal the base run.

    A position is a no-op to patch when it lies before base example ``b``'s first input
    difference (``diff_starts[b]``, :mod:`.noop`; None: unknown) or when the source
    activation equals the base run's bitwise at every patched layer; a row starts at its
    first position that is not, and a row with none is the base run's value."""
    keys = {(c.component, k) for c in todo for k in c.layers}
    tables = {key: sites[key].differs(src[key], base[key]) for key in keys}
    rows, known = [], []
    for i, cell in enumerate(todo):
        start = min(cell.layers) if n_layers else 0
        per_layer = [tables[(cell.component, k)] for k in cell.layers]
        for b in range(nb):
            q = None
            first = 0 if diff_starts is None else diff_starts[b]
            for p in cell.positions:
                if p < first:
                    continue
                for whole, by_head in per_layer:
                    if whole[b][p] if cell.head is None else by_head[b][p][cell.head]:
                        q = p
                        break
                if q is not None:
                    break
            if q is None:
                known.append((i, b))
            else:
                rows.append(Row(i, b, start, q))
    return rows, known


def bucket_rows(rows: list[Row], seq: int, n_layers: int, rows_per, overhead: float):
    """Partition rows by first position into buckets (contiguous ranges of ``q``) that
    minimise modelled cost: computed token-layers plus ``overhead`` per layer call."""
    by_q: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        by_q[r.q].append(r)
    qs = sorted(by_q)
    # At most 256 candidate buckets (long prompts): merge neighbouring values.
    step = max(1, math.ceil(len(qs) / 256))
    groups = [qs[i : i + step] for i in range(0, len(qs), step)]
    n = [sum(len(by_q[q]) for q in g) for g in groups]
    work = [sum(n_layers - r.start for q in g for r in by_q[q]) for g in groups]
    first = [min(r.start for q in g for r in by_q[q]) for g in groups]
    best = [0.0] + [math.inf] * len(groups)
    cut = [0] * (len(groups) + 1)
    for j in range(1, len(groups) + 1):
        cnt = w = 0
        lo = n_layers
        for i in range(j, 0, -1):  # bucket = groups[i-1 .. j-1], starting at position q_i
            cnt, w, lo = cnt + n[i - 1], w + work[i - 1], min(lo, first[i - 1])
            q_len = seq - groups[i - 1][0]
            calls = math.ceil(cnt / rows_per(q_len)) * (n_layers - lo)
            cost = best[i - 1] + w * q_len + overhead * calls
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    out = []
    j = len(groups)
    while j > 0:
        i = cut[j]
        members = [r for g in groups[i:j] for q in g for r in by_q[q]]
        out.append((groups[i][0], members))
        j = i
    return out[::-1]


def plan_chunks(rows, stack, model, seq, max_rows, budget, overhead, device):
    """``[(q_start, rows, work)]``, the batches to run (rows sorted by first layer), and the
    call overhead in token-layers (``work`` counts token-layers plus overhead per call)."""

    def rows_per(q_len: int) -> int:
        return rows_per_chunk(model, q_len, max_rows, budget)

    if overhead is None:
        overhead = OVERHEAD_TOKENS.get(torch.device(device).type, OVERHEAD_TOKENS_DEFAULT)
    if not rows:
        return [], overhead
    if stack is None:
        per = rows_per(seq)
        return [
            (0, rows[i : i + per], len(rows[i : i + per])) for i in range(0, len(rows), per)
        ], overhead
    n_layers = stack.num_layers
    plan = []
    for q_start, members in bucket_rows(rows, seq, n_layers, rows_per, overhead):
        members.sort(key=lambda r: (r.start, r.cell, r.b))
        per = rows_per(seq - q_start)
        for i in range(0, len(members), per):
            chunk = members[i : i + per]
            q_len = seq - q_start
            work = sum(n_layers - r.start for r in chunk) * q_len
            work += overhead * (n_layers - chunk[0].start)
            plan.append((q_start, chunk, work))
    return plan, overhead


def rows_per_chunk(model, q_len: int, max_rows: int | None, budget: int) -> int:
    """How many rows of ``q_len`` positions fit the memory ``budget`` (or ``max_rows``)."""
    if max_rows:
        return int(max_rows)
    cfg = model.config
    d = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 768)
    inter = getattr(cfg, "intermediate_size", None) or 4 * d
    vocab = getattr(cfg, "vocab_size", 50000)
    per_row = 4 * (q_len * (8 * d + 3 * inter + 4 * q_len) + 3 * vocab)
    return max(1, budget // per_row)
