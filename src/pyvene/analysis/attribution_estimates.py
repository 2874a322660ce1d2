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
    """``(*lead, B, T, W)`` products -> ``(*lead, *cells)``, averaged over examples (``lead``:
    e.g. the layers of a stacked component)."""
    if info.heads is not None:
        prod = _take(prod.unflatten(-1, (info.heads, info.head_dim)).sum(-1), -1, units)
    elif neuron:
        prod = _take(prod, -1, units)
    else:
        prod = prod.sum(-1, keepdim=True)  # one unit, squeezed below
    prod = _take(prod, -2, pos)  # (*lead, B, P, U)
    prod = prod.movedim(-2, -1).mean(-3) if per_pos else prod.sum(-2).mean(-2)  # (*, U[, P])
    if info.heads is None and not neuron:
        prod = prod.squeeze(-2 if per_pos else -1)
    return prod


def _take(x: torch.Tensor, dim: int, index: list[int]) -> torch.Tensor:
    """``x`` at ``index`` along ``dim`` (no copy when ``index`` is every entry in order)."""
    if len(index) == x.shape[dim] and index == list(range(len(index))):
        return x
    return x.index_select(dim, torch.tensor(index, device=x.device))


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
    layers_of: dict[str, list[int]] = {}
    for c, ly in plain:
        if _upstream(est.infos[(c, ly)], n_layers - 1):  # some dropped layer reaches it
            layers_of.setdefault(c, []).append(ly)
    every = est.gp.dropped_all(sorted({est.grad_key(c, ly) for c in layers_of
                                       for ly in layers_of[c]}), group)  # fmt: skip
    for drop in range(n_layers):
        got = {k: v[drop] for k, v in every.items()}
        dropped = {}
        for c, lys in layers_of.items():
            up = [ly for ly in lys if _upstream(est.infos[(c, ly)], drop)]
            dropped.update({(c, ly): v for ly, v in est.estimate_layers(c, up, got).items()})
        for (c, ly), v in plain.items():
            value = dropped.get((c, ly))
            if value is None:  # the node's own contribution is the dropped one: zero
                own = est.infos[(c, ly)].stage == "inner" and ly == drop
                value = torch.zeros_like(v) if own else v
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
    """The estimates of one pass: ``estimate_layers(component, layers, grads)`` with
    ``grads`` mapping a site key to the metric's gradient there (plain, or with a layer
    dropped). Layers whose tensors share a device and shape are computed as one stack, and
    the source-minus-base differences are kept for the GradDrop variants."""

    def __init__(self, infos, src, gp: GradPass, deltas, neuron_of, per_position, heads, pos,
                 use_qk: bool) -> None:  # fmt: skip
        self.infos, self.src, self.gp, self.deltas = infos, src, gp, deltas
        self.neuron_of, self.per_position, self.heads = neuron_of, per_position, heads
        self.pos, self.use_qk = pos, use_qk
        self.units_of: dict[str, list[int] | None] = {}
        self._diffs: dict[tuple, torch.Tensor] = {}

    def is_qk(self, comp: str) -> bool:
        return self.use_qk and kind_of(comp) is not None

    def grad_key(self, c: str, ly: int) -> tuple:
        """The site key whose gradient the estimate of ``(c, ly)`` reads."""
        return self.infos[(Z, ly)].key if self.is_qk(c) else self.infos[(c, ly)].key

    def _units(self, c: str, info: SiteInfo) -> tuple[list[int] | None, bool]:
        per_pos = per_pos_of(self.per_position, info, self.neuron_of[c])
        units = None
        if info.heads is not None or self.neuron_of[c]:
            n_units = info.heads if info.heads is not None else _width(info, self.src)
            use_all = self.heads is None or info.heads is None
            units = list(range(n_units)) if use_all else list(self.heads)
        self.units_of[c] = units
        return units, per_pos

    def estimate_layers(
        self, c: str, layers: list[int], grads: dict[tuple, torch.Tensor]
    ) -> dict[int, torch.Tensor]:
        """``{layer: grid}`` of component ``c`` at ``layers``."""
        if not layers:
            return {}
        units, per_pos = self._units(c, self.infos[(c, layers[0])])
        if self.is_qk(c):
            out = {}
            for ly in layers:
                info, z = self.infos[(c, ly)], self.infos[(Z, ly)]
                g = grads[z.key]
                out[ly] = _qk_reduce(self.deltas[ly], info, g, z, units, self.pos, per_pos)
            return out
        groups: dict[tuple, list[int]] = {}
        for ly in layers:
            g = grads[self.infos[(c, ly)].key]
            groups.setdefault((g.device, g.shape), []).append(ly)
        out = {}
        for group in groups.values():
            infos = [self.infos[(c, ly)] for ly in group]
            diff = self._diff(infos)
            g = torch.stack([grads[i.key] for i in infos]).float()
            if infos[0].cols is not None:
                g = g[..., infos[0].cols.to(g.device)]
            est = _reduce(diff * g, infos[0], self.neuron_of[c], units, self.pos, per_pos)
            out.update(zip(group, est.unbind(0)))
        return out

    def _diff(self, infos: list[SiteInfo]) -> torch.Tensor:
        """``(L, B, T, W)`` source minus base activations of stacked sites (their columns)."""
        keys = tuple(i.key for i in infos)
        cols = infos[0].cols
        cache = (keys, None if cols is None else tuple(cols.tolist()))
        diff = self._diffs.get(cache)
        if diff is None:
            base = torch.stack([self.gp.acts[k] for k in keys]).float()
            src = torch.stack([self.src[k].to(base.device) for k in keys]).float()
            diff = src - base
            if cols is not None:
                diff = diff[..., cols.to(diff.device)]
            self._diffs[cache] = diff
        return diff
