"""Exact reruns of attributed cells and how well the estimate ranked them.

Whole-component and head cells go through the batched sweep engine (:func:`.cells.run_cells`:
one batch row per cell and example, shared-prefix skipping, layer adapters). Single-neuron
cells, which the engine has no unit for, run as packed whole-model batches: one row per (cell,
base example), each row patched at its own (layer, position, neuron) by one vectorised
``index_put`` per site. Every value is ``metric(patched) - metric(base)`` averaged over the
base examples, the quantity the attribution estimates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..families import resolve_site
from ..hooks import HookSession
from .attribution_grad import collect, last_logits, site_info
from .cells import Cell, run_cells
from .cells import sweep_inputs as as_inputs


@dataclass(frozen=True)
class CellSpec:
    """One attributed cell: ``component`` at ``layer``, unit ``unit`` (a head for head
    components, a neuron for neuron components, None for the whole component) and the
    positions it patches together."""

    component: str
    layer: int
    unit: int | None
    positions: tuple[int, ...]
    neuron: bool = False


def exact_effects(
    model: nn.Module,
    base: dict[str, torch.Tensor] | torch.Tensor,
    source: dict[str, torch.Tensor] | torch.Tensor,
    metric: Callable[[torch.Tensor], torch.Tensor],
    specs: Sequence[CellSpec],
    *,
    max_rows: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """Exact effect of every cell, ``(len(specs),)`` on the CPU. ``base`` / ``source``: ids
    ``(batch, seq)`` or dicts, as for :func:`.cells.run_cells`."""
    base, source = as_inputs(base), as_inputs(source)
    out = torch.empty(len(specs))
    engine = [i for i, s in enumerate(specs) if not s.neuron]
    neurons = [i for i, s in enumerate(specs) if s.neuron]
    if engine:
        cells = [
            Cell(specs[i].component, (specs[i].layer,), specs[i].positions, specs[i].unit)
            for i in engine
        ]
        vals, base_v, _ = run_cells(model, base, source, cells, metric, progress=progress)
        out[engine] = (vals - base_v).float().cpu()
    if neurons:
        out[neurons] = _neuron_effects(model, base, source, metric, [specs[i] for i in neurons],
                                       max_rows)  # fmt: skip
    return out


def _neuron_effects(model, base, source, metric, specs: list[CellSpec], max_rows: int):
    nb = next(iter(base.values())).shape[0]
    ns = next(iter(source.values())).shape[0]
    sites = {(s.component, s.layer): resolve_site(model, s.layer, s.component) for s in specs}
    hooks = {(site.module_path, str(site.hook)): site for site in sites.values()}
    src_store, _ = collect(model, source, hooks)
    with torch.no_grad():
        base_value = metric(last_logits(model, base, use_cache=False)).float().mean()
    infos = {
        k: site_info(model, k[0], k[1], src_store[(site.module_path, str(site.hook))].shape[-1])
        for k, site in sites.items()
    }
    n_rows = len(specs) * nb
    values = torch.empty(n_rows)
    cell_of = torch.arange(n_rows) // nb
    row_b = torch.arange(n_rows) % nb
    per_chunk = max(1, max_rows)
    for lo in range(0, n_rows, per_chunk):
        hi = min(n_rows, lo + per_chunk)
        by_site: dict[tuple, list[tuple[int, int, int, int]]] = defaultdict(list)
        for r in range(lo, hi):
            s = specs[int(cell_of[r])]
            info = infos[(s.component, s.layer)]
            col = s.unit if info.cols is None else int(info.cols[s.unit])
            srow = int(row_b[r]) if ns > 1 else 0
            by_site[info.key].extend((r - lo, srow, p, col) for p in s.positions)
        with torch.no_grad(), HookSession() as session:
            for key, entries in by_site.items():
                site = hooks[key]
                r, sr, p, c = torch.tensor(entries, dtype=torch.long).T
                session.on(site.module, site.hook, _setter(r, sr, p, c, src_store[key]))
            rows = {k: v[row_b[lo:hi].to(v.device)] for k, v in base.items()}
            logits = last_logits(model, rows, use_cache=False)
            values[lo:hi] = metric(logits).float().cpu()
    return (values.view(len(specs), nb).mean(1) - base_value.cpu()).float()


def _setter(r, sr, p, c, source):
    def patch(act: torch.Tensor) -> torch.Tensor:
        act = act.clone()
        dev = act.device
        act[r.to(dev), p.to(dev), c.to(dev)] = source.to(dev)[sr.to(dev), p.to(dev), c.to(dev)].to(
            act.dtype
        )
        return act

    return patch


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman rank correlation of two equal-length vectors (ties broken by order)."""
    x, y = x.flatten().double(), y.flatten().double()
    if x.numel() < 2:
        return float("nan")
    rx = torch.empty_like(x).scatter_(0, x.argsort(), torch.arange(x.numel(), dtype=x.dtype))
    ry = torch.empty_like(y).scatter_(0, y.argsort(), torch.arange(y.numel(), dtype=y.dtype))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()))


def top_k_recall(estimate: torch.Tensor, exact: torch.Tensor, k: int, within: int | None = None):
    """Fraction of the ``k`` cells largest in ``|exact|`` that are among the ``within``
    (default ``k``) cells largest in ``|estimate|``."""
    e, x = estimate.flatten().abs(), exact.flatten().abs()
    k = min(k, x.numel())
    within = min(within or k, e.numel())
    top_exact = set(x.topk(k).indices.tolist())
    top_est = set(e.topk(within).indices.tolist())
    return len(top_exact & top_est) / max(1, k)


@dataclass
class Verification:
    """The verified cells of one component. ``cells``: their grid indices, best estimate
    first; ``estimate`` / ``exact``: the estimated and exact effects; ``spearman``: rank
    correlation over these cells; ``sign_agreement``: fraction with the same sign.
    With ``verify="grid"`` every cell is verified and ``recall`` holds top-K recalls:
    ``{"top10_in_top10": ..., "top10_in_top20": ...}``."""

    component: str
    cells: list[tuple[int, ...]]
    estimate: torch.Tensor
    exact: torch.Tensor
    spearman: float
    sign_agreement: float
    recall: dict[str, float]

    def __str__(self) -> str:
        rec = " ".join(f"{k}={v:.2f}" for k, v in self.recall.items())
        return (f"{self.component}: {len(self.cells)} cells verified, spearman "
                f"{self.spearman:.3f}, sign agreement {self.sign_agreement:.2f} {rec}").rstrip()  # fmt: skip


def verification(
    component: str, cells: list[tuple[int, ...]], est: torch.Tensor, exact: torch.Tensor,
    grid: bool, k: int,
) -> Verification:  # fmt: skip
    """Summarise estimates against exact values (``grid``: all cells, with top-K recall)."""
    signs = (torch.sign(est) == torch.sign(exact)).float().mean().item() if len(cells) else 0.0
    recall = {}
    if grid:
        recall = {
            f"top{k}_in_top{k}": top_k_recall(est, exact, k),
            f"top{k}_in_top{2 * k}": top_k_recall(est, exact, k, 2 * k),
        }
    return Verification(component, cells, est, exact, spearman(est, exact), signs, recall)
