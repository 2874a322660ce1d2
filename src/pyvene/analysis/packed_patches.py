"""Patch hooks of a packed chunk (:mod:`.packed`): each row restores its cell's source
activations at its own positions (padded coordinates), written in one ``index_copy_`` per
hooked module; the last layer's cut to the last position has its own subset."""

from __future__ import annotations

from collections import defaultdict

import torch

from ..hooks import HookSession


def patch_specs(chunk, preps, sites, packed, q_start, device):
    """Per layer ``[(site, full, tail)]``: flat destinations in the chunk's activation
    ``(rows * q_len, width)`` (or single elements for a column subset), source values, and
    the last-position subset for the last layer's cut (see :mod:`.cells`)."""
    T, q_len = packed.T, packed.T - q_start
    lists: dict[tuple[str, int, bool], list[tuple[int, int, int, int]]] = defaultdict(list)
    for r, row in enumerate(chunk):
        prep, off = preps[row.job], packed.off[row.job]
        cell = prep.todo[row.cell]
        s_local = row.b if prep.ns > 1 else 0
        head = -1 if cell.head is None else cell.head
        pos = [p + off for p in cell.positions if p + off >= row.q]
        for k in cell.layers:
            key = (cell.component, k)
            srow = packed.soff_key[key][row.job] + s_local
            lists[(cell.component, k, cell.head is not None)].extend(
                (r, srow, p, head) for p in pos
            )
    by_layer: dict[int, list] = defaultdict(list)
    for (comp, k, is_head), entries in lists.items():
        site = sites[(comp, k)]
        r, srow, p, head = torch.tensor(entries, dtype=torch.long).T.contiguous()
        value = packed.src[(comp, k)]
        rows = value.reshape(-1, value.shape[-1]).index_select(0, (srow * T + p).to(value.device))
        if is_head:
            all_cols = site.cols if site.cols is not None else torch.arange(site.width)
            cols = all_cols.view(site.heads, site.head_dim)[head]  # (N, head_dim)
            vals = rows.gather(1, cols.to(rows.device))
        elif site.cols is not None:
            cols = site.cols.expand(len(r), -1)
            vals = rows.index_select(1, site.cols.to(rows.device))
        else:
            cols, vals = None, rows
        last = p == T - 1
        full = _spec(r * q_len + p - q_start, cols, vals, site.width, device)
        tail = _spec(r[last], None if cols is None else cols[last],
                     vals[last.to(vals.device)], site.width, device)  # fmt: skip
        by_layer[k].append((site, full, tail))
    return by_layer


def _spec(dst, cols, vals, width, device):
    if cols is not None:
        dst = (dst[:, None] * width + cols).reshape(-1)
        vals = vals.reshape(-1)
    return dst.to(device), vals.to(device), cols is None


def install_patches(session: HookSession, by_layer, q_len: int) -> None:
    """Install one patch hook per hooked module of a packed chunk on ``session`` (removed
    with it); ``by_layer`` holds each layer's ``(site, full, tail)`` patch specs."""
    for specs in by_layer.values():
        for site, full, tail in specs:
            session.on(site.site.module, site.site.hook, _hook(full, tail, q_len))


def _hook(full, tail, q_len):
    def patch(act: torch.Tensor) -> torch.Tensor | None:
        n = act.shape[1]
        dst, vals, whole = full if n == q_len else tail if n == 1 else (None, None, None)
        if dst is None:
            raise RuntimeError(f"packed sweep patch: expected {q_len} positions, got {n}")
        if dst.numel() == 0:
            return None
        act = act.clone(memory_format=torch.contiguous_format)
        flat = act.view(-1, act.shape[-1]) if whole else act.view(-1)
        flat.index_copy_(0, dst, vals.to(act.dtype))
        return act

    return patch
