"""Activation-patching sweeps: the full grid of a metric over (component, layer, position)
or (layer, head[, position]), computed as one batched job (see :mod:`.cells`).

Every cell equals a per-cell :class:`pyvene.IntervenableModel` run that copies the source
(clean) activation into the base (corrupted) run at that site with a VanillaIntervention.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..families import family_of, resolve_site
from .cells import Cell, _shape, as_inputs, check_position, run_cells
from .display import HeatmapDisplay
from .metrics import as_metric


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
        from .plots import plot_sweep

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


def patching_sweep(  # noqa: C901  # #14: refactor
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
    """
    metric = as_metric(metric)
    comps = [components] if isinstance(components, str) else list(components)
    n_layers = num_layers(model)
    _, seq = _shape(as_inputs(base))
    layers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    if not layers or not comps:
        raise ConfigError(f"a sweep needs layers and components, got {layers} and {comps}")
    cells: list[Cell] = []
    slots: list[tuple[str, tuple[int, ...]]] = []
    shapes: dict[str, tuple[int, ...]] = {}
    head_list: list[int] | None = None
    pos_list = (
        list(range(seq)) if positions is None else [check_position(p, seq) for p in positions]
    )
    windows = window if isinstance(window, dict) else dict.fromkeys(comps, window)
    for comp in comps:
        window = int(windows.get(comp, 1))
        site = resolve_site(model, layers[0], comp)
        if site.is_head:
            head_list = list(range(site.heads)) if heads is None else [int(h) for h in heads]
            by_pos = bool(per_position)
            for li, layer in enumerate(layers):
                lays = window_layers(layer, window, n_layers)
                for hi, h in enumerate(head_list):
                    if by_pos:
                        for pi, p in enumerate(pos_list):
                            cells.append(Cell(comp, lays, (p,), h))
                            slots.append((comp, (li, hi, pi)))
                    else:
                        cells.append(Cell(comp, lays, tuple(pos_list), h))
                        slots.append((comp, (li, hi)))
            shape = (len(layers), len(head_list)) + ((len(pos_list),) if by_pos else ())
        else:
            if per_position is False:
                for li, layer in enumerate(layers):
                    cells.append(
                        Cell(comp, window_layers(layer, window, n_layers), tuple(pos_list))
                    )
                    slots.append((comp, (li,)))
                shape = (len(layers),)
            else:
                for li, layer in enumerate(layers):
                    lays = window_layers(layer, window, n_layers)
                    for pi, p in enumerate(pos_list):
                        cells.append(Cell(comp, lays, (p,)))
                        slots.append((comp, (li, pi)))
                shape = (len(layers), len(pos_list))
        shapes[comp] = shape
    vals, base_v, src_v = run_cells(
        model, base, source, cells, metric,
        method=method, max_rows=max_rows, memory_budget=memory_budget, progress=progress,
    )  # fmt: skip
    vals = vals.cpu()
    out = {comp: torch.empty(shape) for comp, shape in shapes.items()}
    for (comp, idx), v in zip(slots, vals):
        out[comp][idx] = v
    return SweepResult(
        out, layers, pos_list, head_list, float(base_v), float(src_v),
        meta={"window": windows, "metric": getattr(metric, "__name__", "metric")},
    )  # fmt: skip


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
