"""Left-padded batches of prompts of different lengths: one forward collects the source (or
the base) runs of every packed job (:mod:`.packed`), or the clean predictions of many records
(:mod:`.dataset_trace`).

A prompt of ``seq`` tokens sits at the right of a row of ``T`` positions (offset ``T - seq``),
so the last position is every prompt's last token. The attention mask hides the pad
positions and the position ids count from each prompt's first token, so every real position's
activations equal the unpadded run's (float reassociation only, ~1e-7). Padding needs a
decoder whose family declares a layer stack and whose forward takes ``attention_mask`` and
``position_ids`` (:func:`can_pad`); otherwise prompts of equal length share unpadded batches.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .cells import collect_runs, forward_last, input_shape
from .stack import LayerStack, layer_kv, run_cache, stack_unavailable

KV = ("__keys__", "__values__")  # store keys of the base run's cached keys / values per layer


def can_pad(model: nn.Module, seq: int) -> bool:
    """Whether prompts up to ``seq`` tokens can share a left-padded batch on ``model``."""
    if stack_unavailable(model, seq) is not None:
        return False
    params = inspect.signature(model.forward).parameters
    return "attention_mask" in params and "position_ids" in params


def pad_batch(inputs: list[dict[str, torch.Tensor]], T: int, mask: bool = True):
    """Input dicts (the same keys, ``(n, seq, ...)`` each) left-padded with zeros to ``T``
    and concatenated, with ``attention_mask`` and ``position_ids`` when ``mask``; and the
    offset (pad length) of every row."""
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    offs: list[int] = []
    for x in inputs:
        n, seq = input_shape(x)
        for key, v in x.items():
            if seq < T:
                shape = list(v.shape)
                shape[1] = T - seq
                v = torch.cat([v.new_zeros(shape), v], dim=1)
            parts[key].append(v)
        offs += [T - seq] * n
    out = {key: torch.cat(v) for key, v in parts.items()}
    device = next(iter(out.values())).device
    off = torch.tensor(offs, device=device)
    if mask:
        pos = torch.arange(T, device=device)[None] - off[:, None]
        out["attention_mask"] = (pos >= 0).long()
        out["position_ids"] = pos.clamp(min=0)
    return out, off


@torch.no_grad()
def last_logits(model: nn.Module, prompts: list[torch.Tensor]) -> list[torch.Tensor]:
    """The last position's logits of each prompt (``(1, seq)`` ids): one left-padded forward
    when the model allows it (:func:`can_pad`), else one forward per distinct length."""
    if not prompts:
        return []
    T = max(int(p.shape[1]) for p in prompts)
    pad = can_pad(model, T)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[T if pad else int(p.shape[1])].append(i)
    out: list[Any] = [None] * len(prompts)
    for length, members in groups.items():
        inputs, _ = pad_batch([{"input_ids": prompts[i]} for i in members], length, mask=pad)
        logits = forward_last(model, inputs)[1]
        for row, i in enumerate(members):
            out[i] = logits[row]
    return out


@dataclass
class PaddedRuns:
    """Every packed job's runs left-padded to ``T``, rows in job order: the source stores
    (``src``, by site), each layer's input hidden state and cached keys / values of the base
    rows, and each base row's offset (``row_off``). Pad positions of the base tensors are 0."""

    src: dict[Any, torch.Tensor]
    inputs: list[torch.Tensor]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    row_off: torch.Tensor


def collect_jobs(model: nn.Module, runs: list, stack: LayerStack | None, sites: dict, T: int):
    """Collect the source and base runs of many :class:`.cells.SweepRuns` in shared forwards
    (left-padded to ``T`` when :func:`can_pad`, else one per input kind and length) and
    :meth:`~.cells.SweepRuns.finish` each with views of its own rows and positions. Returns
    the padded job-ordered tensors (:class:`PaddedRuns`) when padded with a stack, else None
    (each run's ``store`` then holds its layer inputs and ``KV`` entries unpadded)."""
    pad = can_pad(model, T)
    keys = set().union(*(r.keys for r in runs))
    src_views, src_last, src_batch = _collect(model, [r.source for r in runs], keys, None, T, pad)
    base_views, base_last, base_batch = _collect(model, [r.base for r in runs], keys, stack, T,
                                                 pad)  # fmt: skip
    for j, r in enumerate(runs):
        r.finish(model, sites, src_views[j], base_views[j], src_last[j], base_last[j])
    if not pad or stack is None:
        return None
    store, off = base_batch
    real = torch.arange(T, device=off.device)[None] >= off[:, None]  # (rows, T)
    n = stack.num_layers
    inputs = [_zero_pads(store[("__in__", k)], real[:, :, None]) for k in range(n)]
    kv = [[_zero_pads(store[(name, k)], real[:, None, :, None]) for k in range(n)] for name in KV]
    return PaddedRuns(src_batch[0], inputs, kv[0], kv[1], off)


def _zero_pads(x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return x.masked_fill(~real.to(x.device), 0)


def _collect(model, inputs_list, keys, stack, T, pad):
    """One role's runs (sources or bases) of many jobs: jobs with the same input keys (and,
    unpadded, the same length) share a forward. Returns each job's store views (its rows,
    its real positions) and last logits, and, padded, the job-ordered store and row offsets."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for j, x in enumerate(inputs_list):
        groups[(tuple(sorted(x)), T if pad else input_shape(x)[1])].append(j)
    views: list[Any] = [None] * len(inputs_list)
    lasts: list[Any] = [None] * len(inputs_list)
    parts = []
    for (_, length), members in groups.items():
        inputs, off = pad_batch([inputs_list[j] for j in members], length, mask=pad)
        store, out, last = collect_runs(model, inputs, keys, stack)
        if stack is not None:
            cache = run_cache(out)
            for k in range(stack.num_layers):
                store[(KV[0], k)], store[(KV[1], k)] = layer_kv(cache, k)
        row = 0
        for j in members:
            n, seq = input_shape(inputs_list[j])
            views[j] = {key: _rows(v, key, row, n, length - seq) for key, v in store.items()}
            lasts[j] = last[row : row + n]
            row += n
        parts.append((members, store, off))
    return views, lasts, (_job_order(parts, inputs_list) if pad else None)


def _rows(v: torch.Tensor, key: Any, row: int, n: int, off: int) -> torch.Tensor:
    """A view of rows ``row..row+n-1`` from position ``off`` on (dim 2 for keys/values)."""
    dim = 2 if key[0] in KV else 1
    return v[row : row + n].narrow(dim, off, v.shape[dim] - off)


def _job_order(parts, inputs_list):
    """The groups' stores concatenated with rows in job order, and the row offsets."""
    if len(parts) == 1:  # one group: its members are the jobs in order
        return parts[0][1], parts[0][2]
    starts, total = {}, 0
    for members, _, _ in parts:
        for j in members:
            starts[j] = total
            total += input_shape(inputs_list[j])[0]
    perm = [starts[j] + i for j in range(len(inputs_list))
            for i in range(input_shape(inputs_list[j])[0])]  # fmt: skip
    index = torch.tensor(perm)
    store = {}
    for key in parts[0][1]:
        v = torch.cat([p[1][key] for p in parts])
        store[key] = v[index.to(v.device)]
    off = torch.cat([p[2] for p in parts])
    return store, off[index.to(off.device)]
