"""Activation-patching sweeps: the full grid of a metric over (component, layer, position)
or (layer, head[, position]), computed as one batched job (see :mod:`.cells`).

Every cell equals a per-cell :class:`pyvene.IntervenableModel` run that copies the source
(clean) activation into the base (corrupted) run at that site with a VanillaIntervention.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..families import family_of, resolve_site
from .cells import Cell, check_position, input_shape, run_cells, sweep_inputs
from .display import HeatmapDisplay
from .metrics import as_metric
from .plots import plot_sweep


@dataclass
class SweepResult(HeatmapDisplay):
    """``values[component]``: a grid of shape ``(layers, positions)`` for position sweeps,
    ``(layers, heads)`` for all-position head sweeps, ``(layers, heads, positions)`` for
    head-by-position sweeps. ``base_value`` / ``source_value``: the metric with no patch on
    the base (corrupted) and source (clean) inputs."""

    values: dict[str, torch.Tensor]
    layers: list[int]
    positions: list[int] | None
    heads: list[int] | None
    base_value: float
    source_value: float
    tokens: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, component: str) -> torch.Tensor:
        return self.values[component]

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """One heatmap panel per component (:func:`~pyvene.analysis.plot_sweep`); saved when
        ``path`` is given. Notebooks show it when the result is displayed."""
        return plot_sweep(self, path)

    def summary(self) -> str:
        return (
            f"SweepResult: {', '.join(self.values)} over layers {_span(self.layers)}; metric "
            f"base={self.base_value:.4g} source={self.source_value:.4g}"
        )


def _span(values: list[int]) -> str:
    contiguous = values == list(range(values[0], values[-1] + 1)) if values else False
    return f"{values[0]}-{values[-1]}" if contiguous and len(values) > 2 else str(values)


def window_layers(layer: int, window: int, n_layers: int) -> tuple[int, ...]:
    """ROME's run of ``window`` layers centred on ``layer``, clipped to the model."""
    if window <= 1:
        return (layer,)
    lo, hi = max(0, layer - window // 2), min(n_layers, layer - (-window // 2))
    return tuple(range(lo, hi))


def num_layers(model: nn.Module) -> int:
    """Number of layers of ``model`` from its family table; sweeps over abstract components
    need one, so a model without a family is refused with :class:`ConfigError`."""
    family = family_of(model)
    if family is None:
        raise ConfigError(
            f"sweeps over abstract components need a model family with a table; "
            f"{type(model).__name__} has none"
        )
    return family.num_layers(model.config)


def patching_sweep(
    model: nn.Module,
    base: Any,
    source: Any,
    metric: Callable[[torch.Tensor], torch.Tensor] | int,
    components: str | Sequence[str] = "block_output",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    *,
    window: int | dict[str, int] = 1,
    per_position: bool | None = None,
    method: str = "auto",
    max_rows: int | None = None,
    memory_budget: int = 1 << 29,
    progress: bool | Any = True,
    diff_start: int | Sequence[int] | None = None,
) -> SweepResult:
    """Restore each source activation into the base run, one cell at a time, as one job.

    ``base``/``source``: token ids ``(batch, seq)`` or a dict with ``input_ids`` or
    ``inputs_embeds`` (same length; source batch 1 or equal to base's; a cell's value is the
    mean over base examples). ``metric``: callable on last-position logits ``(rows, vocab)
    -> (rows,)`` or a token id (its probability). ``layers``/``positions``: default all.
    ``window``: restore ``window`` consecutive layers centred on each layer (ROME: 10); a
    dict gives it per component (missing: 1). All components are one job: one source run,
    one base run, and rows of different components share batches.

    Head components (``head_*``) sweep ``heads`` (default all) at all ``positions`` at once
    (grid ``(layers, heads)``) unless ``per_position=True`` (grid ``(layers, heads,
    positions)``). ``method``: "auto", "stack" (layer adapter) or "full" (whole-model runs).
    ``memory_budget`` (bytes) or ``max_rows`` bound a packed batch.

    In a causal decoder, cells that patch only positions before the first one where the
    base and source inputs differ are no-ops: they are the base run's value and are not
    computed. With token ids that position is read off the ids; ``diff_start`` (one int,
    or one per base example) declares it for ``inputs_embeds`` (:mod:`.noop`).
    """
    metric = as_metric(metric)
    comps = [components] if isinstance(components, str) else list(components)
    n_layers = num_layers(model)
    _, seq = input_shape(sweep_inputs(base))
    layers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    if not layers or not comps:
        raise ConfigError(f"a sweep needs layers and components, got {layers} and {comps}")
    pos_list = (
        list(range(seq)) if positions is None else [check_position(p, seq) for p in positions]
    )
    windows = window if isinstance(window, dict) else dict.fromkeys(comps, window)
    cells: list[Cell] = []
    shapes: dict[str, tuple[int, ...]] = {}
    head_list: list[int] | None = None
    for comp in comps:
        site = resolve_site(model, layers[0], comp)
        comp_heads = None
        if site.is_head:
            comp_heads = list(range(site.heads)) if heads is None else [int(h) for h in heads]
            head_list = comp_heads
        runs = [window_layers(layer, int(windows.get(comp, 1)), n_layers) for layer in layers]
        comp_cells, shapes[comp] = component_cells(comp, runs, pos_list, comp_heads, per_position)
        cells.extend(comp_cells)
    vals, base_v, src_v = run_cells(
        model, base, source, cells, metric,
        method=method, max_rows=max_rows, memory_budget=memory_budget, progress=progress,
        diff_start=diff_start,
    )  # fmt: skip
    return SweepResult(
        split_grids(vals.cpu(), shapes), layers, pos_list, head_list, float(base_v), float(src_v),
        meta={"window": windows, "metric": getattr(metric, "__name__", "metric")},
    )  # fmt: skip


def component_cells(
    comp: str,
    runs: Sequence[tuple[int, ...]],
    positions: Sequence[int],
    heads: Sequence[int] | None = None,
    per_position: bool | None = None,
) -> tuple[list[Cell], tuple[int, ...]]:
    """The cells of one component in grid order (row-major) and the grid's shape: one row
    per layer run (``runs``). A head component (``heads`` given) gives ``(runs, heads)`` at
    all positions together, or ``(runs, heads, positions)`` with ``per_position``; any
    other ``(runs, positions)``, or ``(runs,)`` at all positions together when
    ``per_position`` is False."""
    together = tuple(positions)
    if heads is not None:
        if per_position:
            cells = [Cell(comp, lays, (p,), h) for lays in runs for h in heads for p in positions]
            return cells, (len(runs), len(heads), len(positions))
        return [Cell(comp, lays, together, h) for lays in runs for h in heads], (
            len(runs),
            len(heads),
        )
    if per_position is False:
        return [Cell(comp, lays, together) for lays in runs], (len(runs),)
    return [Cell(comp, lays, (p,)) for lays in runs for p in positions], (len(runs), len(positions))


def split_grids(
    values: torch.Tensor, shapes: dict[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """Consecutive slices of the cell values, one grid per component in ``shapes`` order
    (cells laid out as :func:`component_cells` returns them)."""
    grids, at = {}, 0
    for comp, shape in shapes.items():
        n = math.prod(shape)
        grids[comp] = values[at : at + n].reshape(shape).clone()
        at += n
    return grids


def head_sweep(
    model: nn.Module,
    base: Any,
    source: Any,
    metric: Callable[[torch.Tensor], torch.Tensor] | int,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    *,
    per_position: bool = False,
    component: str = "head_attention_value_output",
    **kwargs: Any,
) -> SweepResult:
    """Per (layer, head) restoration of ``component`` (default each head's attention output
    before ``o_proj``), at all ``positions`` together, or ``per_position``. GQA-aware: heads
    count query heads."""
    return patching_sweep(
        model, base, source, metric, component, layers, positions, heads,
        per_position=per_position, **kwargs,
    )  # fmt: skip
