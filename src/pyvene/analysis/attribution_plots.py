"""Heatmaps of attribution results: one panel per component, layers on the x axis.

Grids with a unit axis and positions (heads or neurons per position) show, per (layer,
position), the signed estimate of the unit with the largest ``|estimate|``; neuron grids
without positions show each layer's largest neuron."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from .plots import plot_heatmap, pyplot_agg, save_figure


def _panel(result: Any, comp: str, tokens: Sequence[str] | None) -> tuple[torch.Tensor, list, str]:
    grid = result.values[comp]
    units = result.units.get(comp)
    neuron = bool(result.meta.get("neurons", {}).get(comp))
    positions = result.positions or []
    labels = list(tokens) if tokens is not None else [str(p) for p in positions]
    if tokens is not None and len(labels) != len(positions):
        labels = [labels[p] for p in positions]
    if grid.dim() == 1:
        return grid[:, None], ["all positions"], comp
    if grid.dim() == 3:
        best = grid.abs().argmax(dim=1, keepdim=True)
        kind = "neuron" if neuron else "head"
        return grid.gather(1, best).squeeze(1), labels, f"{comp} (largest {kind} per cell)"
    if units is not None and neuron:
        best = grid.abs().argmax(dim=1, keepdim=True)
        return grid.gather(1, best), ["largest neuron"], f"{comp} (largest neuron per layer)"
    if units is not None:
        return grid, [f"head {h}" for h in units], comp
    return grid, labels, comp


def plot_attribution(
    result: Any, path: str | os.PathLike[str] | None = None, tokens: Sequence[str] | None = None
) -> Any:
    """One heatmap per component of an :class:`~pyvene.analysis.AttributionResult`
    (estimated effects, diverging colours centred on zero). Returns the figure; saves it
    (png, svg or pdf) when ``path`` is given."""
    plt = pyplot_agg()
    comps = list(result.values)
    fig, axes = plt.subplots(1, len(comps), figsize=(6 * len(comps), 4.5), squeeze=False)
    for ax, comp in zip(axes[0], comps):
        grid, labels, title = _panel(result, comp, tokens or result.tokens)
        plot_heatmap(grid, labels, result.layers, ax=ax, title=f"{result.method}: {title}",
                     cmap="RdBu_r", label="estimated effect")  # fmt: skip
        lim = float(grid.abs().max()) or 1.0
        ax.collections[0].set_clim(-lim, lim)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
