"""AtP*'s QK fix: the exact attention-pattern change of a query or key patch, linearised only
from the attention output on.

Plain AtP linearises through the softmax, which fails when attention saturates. Here, for each
layer, the attention module is rerun once on the base run's own inputs (captured call
arguments), in a batch whose rows patch the projection output with the source's values:

* one row patches the queries at every requested position at once. Row ``t`` of the
  attention pattern depends only on query ``t`` (and head ``h`` only on its own query), so
  this single row gives the exact attention output of every single-(position, head) query
  patch;
* one row per key position ``s`` patches the keys at ``s`` (all key/value heads: key head
  ``g`` only reaches the query heads of its GQA group, so per-group sums are exact per head);
* one row patches the keys at every requested position at once (the all-position cell);
* one row patches nothing (the reference, so rows share the batched arithmetic).

The per-head attention output ``z`` (the input of the output projection, component
``head_attention_value_output``) is read and the rest of the module skipped. The estimate of
a cell is ``sum((z_patched - z_base) * dmetric/dz)`` over the rows and columns it changes:
exact up to the attention output, first order after it. Rotary embeddings, GQA and scaling are
whatever the model's own module does, so no family-specific arithmetic is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..hooks import HookSession, StopForward
from .attribution_grad import SiteInfo


@dataclass
class AttentionDeltas:
    """``z`` changes of one layer, ``(B, T, heads * head_dim)`` per patch kind:
    ``query`` (all requested positions patched, exact per position), ``keys`` (``(B, P, T,
    W)``: one key position each) and ``keys_all`` (all requested key positions at once)."""

    query: torch.Tensor | None
    keys: torch.Tensor | None
    keys_all: torch.Tensor | None


def _rows(x: Any, index: torch.Tensor, batch: int) -> Any:
    """Batch-indexed copy of call arguments: tensors of rank >= 2 whose first dim is the
    batch are indexed by ``index``; tuples/lists/dicts recurse; anything else is kept."""
    if isinstance(x, torch.Tensor):
        if x.dim() >= 2 and x.shape[0] == batch:
            return x.detach().index_select(0, index.to(x.device))
        return x.detach() if x.requires_grad else x
    if isinstance(x, tuple):
        return tuple(_rows(v, index, batch) for v in x)
    if isinstance(x, list):
        return [_rows(v, index, batch) for v in x]
    if isinstance(x, dict):
        return {k: _rows(v, index, batch) for k, v in x.items()}
    return x


def _patcher(rows: torch.Tensor, pos: torch.Tensor, src_rows: torch.Tensor, cols, source):
    """A hook copying ``source[src_rows, pos, cols]`` into ``act[rows, pos, cols]``."""

    def patch(act: torch.Tensor) -> torch.Tensor:
        act = act.clone()
        dev = act.device
        r, p, s = rows.to(dev), pos.to(dev), src_rows.to(dev)
        src = source.to(dev)
        if cols is None:
            act[r, p] = src[s, p].to(act.dtype)
        else:
            c = cols.to(dev)
            act[r[:, None], p[:, None], c[None, :]] = src[s[:, None], p[:, None], c[None, :]].to(
                act.dtype
            )
        return act

    return patch


def attention_deltas(
    attention: nn.Module,
    call: tuple[tuple, dict],
    z: SiteInfo,
    query: SiteInfo | None,
    key: SiteInfo | None,
    sources: dict[tuple, torch.Tensor],
    positions: list[int],
    *,
    per_key: bool,
    all_keys: bool,
) -> AttentionDeltas:
    """Rerun ``attention`` with its captured base ``call`` and the patches above. ``sources``:
    the source run's tensor per site key (batch 1 or the base batch)."""
    args, kwargs = call
    hidden = args[0] if args else kwargs.get("hidden_states")
    batch = hidden.shape[0]
    kinds: list[Any] = ["none"] + (["query"] if query is not None else [])
    if key is not None and per_key:
        kinds += [("key", p) for p in positions]
    if key is not None and all_keys:
        kinds.append("keys_all")
    n = len(kinds)
    index = torch.arange(batch).repeat_interleave(n)  # row b * n + i: example b, kind i
    args, kwargs = _rows(args, index, batch), _rows(kwargs, index, batch)
    for name in ("cache", "past_key_values", "layer_past"):
        if kwargs.get(name) is not None:
            kwargs[name] = None
    plans = _plans(kinds, query, key, sources, positions, batch)
    found: dict[str, torch.Tensor] = {}
    with torch.no_grad(), HookSession() as session:
        # Q and K of a fused projection (GPT-2's c_attn) are two column parts of one tensor:
        # two hooks on one module compose in order
        for name, info in (("q", query), ("k", key)):
            if info is None or not plans[name]:
                continue
            rows, pos, srows = (torch.cat([e[j] for e in plans[name]]) for j in range(3))
            hook = _patcher(rows, pos, srows, info.cols, sources[info.key])
            session.on(info.site.module, info.site.hook, hook)

        def read(t: torch.Tensor) -> None:
            found["z"] = t.detach()
            raise StopForward

        session.on(z.site.module, z.site.hook, read)
        try:
            attention(*args, **kwargs)
        except StopForward:
            pass
    zs = found["z"]
    if z.cols is not None:
        zs = zs[..., z.cols.to(zs.device)]
    zs = zs.float().unflatten(0, (batch, n))  # (B, n, T, W)
    return _split(zs - zs[:, :1], kinds, positions)


def _plans(kinds, query, key, sources, positions, batch) -> dict[str, list[tuple]]:
    """Per projection (``"q"`` / ``"k"``): (rows, positions, source rows) index triples of
    the patches of every kind and example."""
    n = len(kinds)
    pos_all = torch.tensor(positions, dtype=torch.long)
    plans: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {"q": [], "k": []}
    for i, kind in enumerate(kinds):
        if kind == "none":
            continue
        info = query if kind == "query" else key
        pos = pos_all if kind in ("query", "keys_all") else torch.tensor([kind[1]])
        one_source = sources[info.key].shape[0] == 1
        for b in range(batch):
            rows = torch.full((len(pos),), b * n + i, dtype=torch.long)
            srows = torch.full((len(pos),), 0 if one_source else b, dtype=torch.long)
            plans["q" if kind == "query" else "k"].append((rows, pos, srows))
    return plans


def _split(delta: torch.Tensor, kinds: list[Any], positions: list[int]) -> AttentionDeltas:
    """``(B, n, T, W)`` changes of the rerun's rows -> :class:`AttentionDeltas`."""
    out: dict[str, torch.Tensor | None] = {"query": None, "keys": None, "keys_all": None}
    if "query" in kinds:
        out["query"] = delta[:, kinds.index("query")]
    if ("key", positions[0]) in kinds:
        first = kinds.index(("key", positions[0]))
        keys = delta[:, first : first + len(positions)]  # (B, P, T, W)
        t = torch.arange(keys.shape[2], device=keys.device)
        causal = t[None, :] >= torch.tensor(positions, device=keys.device)[:, None]
        out["keys"] = keys * causal[None, :, :, None]  # rows before the key: exactly zero
    if "keys_all" in kinds:
        out["keys_all"] = delta[:, kinds.index("keys_all")]
    return AttentionDeltas(**out)


def head_groups(z_heads: int, key_heads: int) -> torch.Tensor:
    """The key/value head each query head reads (HF ``repeat_kv`` order)."""
    return torch.arange(z_heads) // (z_heads // key_heads)
