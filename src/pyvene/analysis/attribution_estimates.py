"""Per-cell estimates from one pass's activations and gradients (see :mod:`.attribution`):
plain AtP products reduced to cells, the QK fix's attention-output changes dotted with the
gradient of the attention output, and GradDrop's combination over dropped layers."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .attribution_grad import GradPass, SiteInfo
from .qk_fix import head_groups

Z = "head_attention_value_output"


def kind_of(comp: str) -> str | None:
    """Which QK-fix side a component is ("query" / "key"), or None for the other components."""
    if comp.endswith("query_output"):
        return "query"
    if comp.endswith("key_output"):
        return "key"
    return None


def _reduce(prod: torch.Tensor, info: SiteInfo, neuron: bool, units, pos, per_pos) -> torch.Tensor:
    """``(B, T, W)`` products -> the cell grid of one layer, averaged over examples."""
    if info.heads is not None:
        prod = prod.unflatten(-1, (info.heads, info.head_dim)).sum(-1)[..., units]
    elif neuron:
        prod = prod[..., units]
    else:
        prod = prod.sum(-1)
    prod = prod[:, pos]  # (B, P[, U])
    prod = prod.movedim(1, -1) if per_pos else prod.sum(1)
    return prod.mean(0)


def _qk_reduce(deltas, info: SiteInfo, g_z, z: SiteInfo, units, pos, per_pos) -> torch.Tensor:
    """QK-fix estimates of one layer from the attention-output changes and ``dmetric/dz``."""
    g = g_z.float()
    if z.cols is not None:
        g = g[..., z.cols.to(g.device)]
    heads_z = z.heads
    if kind_of(info.component) == "query":
        prod = (deltas.query * g).unflatten(-1, (heads_z, -1)).sum(-1)  # (B, T, Hz)
        prod = prod[:, pos]
        prod = prod[..., units] if info.heads is not None else prod.sum(-1)
        prod = prod.movedim(1, -1) if per_pos else prod.sum(1)
        return prod.mean(0)
    if per_pos:
        prod = (deltas.keys * g[:, None]).sum(2).unflatten(-1, (heads_z, -1)).sum(-1)
    else:
        prod = (deltas.keys_all * g).sum(1).unflatten(-1, (heads_z, -1)).sum(-1)  # (B, Hz)
    if info.heads is not None:
        groups = head_groups(heads_z, info.heads).to(prod.device)
        out = torch.zeros(*prod.shape[:-1], info.heads, device=prod.device)
        prod = out.index_add_(-1, groups, prod)[..., units]
        prod = prod.movedim(1, -1) if per_pos else prod
    else:
        prod = prod.sum(-1)
    return prod.mean(0)


def graddrop(plain, est: ChunkEstimator, n_layers: int, tick: Callable[[], None], group: int = 32):
    """Sum over dropped layers of ``|estimate|`` (and the signed sum), combined as the paper."""
    mag = {k: torch.zeros_like(v) for k, v in plain.items()}
    signed = {k: torch.zeros_like(v) for k, v in plain.items()}
    want = set()
    for c, ly in plain:
        info = est.infos[(c, ly)]
        if _upstream(info, n_layers - 1):
            want.add(est.infos[(Z, ly)].key if est.is_qk(c) else info.key)
    every = est.gp.dropped_all(sorted(want), group)
    for drop in range(n_layers):
        got = {k: v[drop] for k, v in every.items()}
        for (c, ly), v in plain.items():
            info = est.infos[(c, ly)]
            if _upstream(info, drop):
                value = est.estimate(c, ly, got.__getitem__)
            elif info.stage == "inner" and ly == drop:
                value = torch.zeros_like(v)  # the node's own contribution is the dropped one
            else:
                value = v
            mag[(c, ly)] += value.abs()
            signed[(c, ly)] += value
        tick()
    norm = max(1, n_layers - 1)
    return {k: torch.sign(signed[k]) * mag[k] / norm for k in plain}


def _upstream(info: SiteInfo, drop: int) -> bool:
    """Whether dropping layer ``drop``'s contribution changes this site's gradient."""
    return info.layer <= drop if info.stage == "in" else info.layer < drop


def per_pos_of(per_position: bool | None, info: SiteInfo, neuron: bool) -> bool:
    """Whether cells are per position: the caller's choice, else per position for whole
    vectors and summed over positions for heads and neurons."""
    if per_position is None:
        return info.heads is None and not neuron
    return bool(per_position)


def _width(info: SiteInfo, src: dict) -> int:
    return len(info.cols) if info.cols is not None else int(src[info.key].shape[-1])


class ChunkEstimator:
    """The estimates of one pass: ``estimate(component, layer, grad_of)`` with ``grad_of``
    mapping a site key to the metric's gradient there (plain, or with a layer dropped)."""

    def __init__(self, infos, src, gp: GradPass, deltas, neuron_of, per_position, heads, pos,
                 use_qk: bool) -> None:  # fmt: skip
        self.infos, self.src, self.gp, self.deltas = infos, src, gp, deltas
        self.neuron_of, self.per_position, self.heads = neuron_of, per_position, heads
        self.pos, self.use_qk = pos, use_qk
        self.units_of: dict[str, list[int] | None] = {}

    def is_qk(self, comp: str) -> bool:
        return self.use_qk and kind_of(comp) is not None

    def estimate(self, c: str, ly: int, grad_of: Callable[[tuple], torch.Tensor]) -> torch.Tensor:
        info = self.infos[(c, ly)]
        per_pos = per_pos_of(self.per_position, info, self.neuron_of[c])
        units = None
        if info.heads is not None or self.neuron_of[c]:
            n_units = info.heads if info.heads is not None else _width(info, self.src)
            use_all = self.heads is None or info.heads is None
            units = list(range(n_units)) if use_all else list(self.heads)
        self.units_of[c] = units
        if self.is_qk(c):
            z = self.infos[(Z, ly)]
            return _qk_reduce(self.deltas[ly], info, grad_of(z.key), z, units, self.pos, per_pos)
        a_src, a_base = self.src[info.key], self.gp.acts[info.key]
        prod = (a_src.to(a_base.device).float() - a_base.float()) * grad_of(info.key).float()
        if info.cols is not None:
            prod = prod[..., info.cols.to(prod.device)]
        return _reduce(prod, info, self.neuron_of[c], units, self.pos, per_pos)
