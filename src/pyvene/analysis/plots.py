"""Heatmaps of sweep grids (matplotlib, Agg backend): tokens on the y axis, layers on the x
axis, as in ROME's figures. The output format follows the file extension (png, svg, pdf)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError, DimensionMismatchError

FORMATS = ("png", "svg", "pdf")
TITLES = {
    "block_output": "Restoring single hidden states",
    "mlp_output": "Restoring a run of {w} MLP layers",
    "attention_output": "Restoring a run of {w} attention layers",
}
CMAPS = {"block_output": "Purples", "mlp_output": "Greens", "attention_output": "Reds"}


def pyplot_agg() -> Any:
    """pyplot on the Agg backend, for callers that want pyplot figures (ours use _figure)."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _figure(**kwargs: Any) -> Any:
    """A matplotlib Figure outside pyplot: no backend switch, no global figure registry (a
    notebook's inline backend and the user's own plots are left alone; nothing to close)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def clean_token(token: str) -> str:
    """Readable token label: GPT-2/llama byte markers for spaces and newlines replaced."""
    return token.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n")


def plot_heatmap(
    grid: torch.Tensor,
    tokens: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    ax: Any = None,
    title: str = "",
    cmap: str = "Purples",
    label: str = "",
    highlight: Sequence[int] = (),
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Draw ``grid`` of shape ``(layers, tokens)`` with tokens as rows. Tokens whose index is
    in ``highlight`` get a ``*``. Returns the figure; saves it when ``path`` is given."""
    data = grid.detach().float().cpu()
    if data.dim() != 2 or data.shape[1] != len(tokens):
        raise DimensionMismatchError(
            f"grid must be (layers, {len(tokens)} tokens); got {tuple(data.shape)}"
        )
    layers = list(range(data.shape[0])) if layers is None else list(layers)
    fig = None
    if ax is None:
        fig = _figure(figsize=(max(4.0, 0.22 * len(layers) + 2), 0.35 * len(tokens) + 1.5))
        ax = fig.subplots()
    image = ax.pcolormesh(data.T.numpy(), cmap=cmap, shading="flat")
    ax.invert_yaxis()
    ax.set_yticks([i + 0.5 for i in range(len(tokens))])
    names = [clean_token(t) + ("*" if i in highlight else "") for i, t in enumerate(tokens)]
    ax.set_yticklabels(names)
    step = max(1, len(layers) // 10)
    ax.set_xticks([i + 0.5 for i in range(0, len(layers), step)])
    ax.set_xticklabels([str(layers[i]) for i in range(0, len(layers), step)])
    ax.set_xlabel("layer")
    if title:
        ax.set_title(title, fontsize=10)
    bar = ax.figure.colorbar(image, ax=ax)
    if label:
        bar.set_label(label)
    fig = fig or ax.figure
    if path is not None:
        save_figure(fig, path)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save as PNG, SVG or PDF according to the extension."""
    ext = os.path.splitext(str(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ConfigError(f"figure format {ext!r} not supported; use one of {FORMATS}")
    fig.savefig(path, format=ext, bbox_inches="tight", dpi=150 if ext == "png" else None)


def rome_panels(
    grids: dict[str, torch.Tensor],
    rows: Sequence[str],
    layers: Sequence[int],
    *,
    window: int,
    label: str,
    suptitle: str,
    size: tuple[float, float],
    title: str = "{}",
    highlight: Sequence[int] = (),
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """ROME's panels side by side, one per grid kind (hidden states, MLP run, attention
    run), each ``size`` (width, height) inches: :data:`TITLES` (``window`` filled in, then
    put in ``title``) and :data:`CMAPS` per kind. Returns the figure; saves it to ``path``."""
    fig = _figure(figsize=(size[0] * len(grids), size[1]))
    axes = fig.subplots(1, len(grids), squeeze=False)
    for ax, (kind, grid) in zip(axes[0], grids.items()):
        plot_heatmap(
            grid, rows, layers, ax=ax, title=title.format(TITLES.get(kind, kind).format(w=window)),
            cmap=CMAPS.get(kind, "Purples"), label=label, highlight=highlight,
        )  # fmt: skip
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_trace(result: Any, path: str | os.PathLike[str] | None = None) -> Any:
    """The ROME panels side by side (hidden states, MLP run, attention run) for a
    :class:`~pyvene.analysis.tracing.TraceResult`; subject tokens marked with ``*``."""
    return rome_panels(
        result.grids, result.tokens, result.layers, window=result.window,
        label=f"p({result.target.strip()})", highlight=range(*result.subject), path=path,
        size=(max(4.0, 0.2 * len(result.layers) + 2.5), 0.35 * len(result.tokens) + 1.8),
        suptitle=f"p(clean)={result.clean_prob:.3f}  p(corrupted)={result.corrupted_prob:.3f}  "
        f"({result.samples} noise samples)",
    )  # fmt: skip


def plot_sweep(result: Any, path: str | os.PathLike[str] | None = None, tokens=None) -> Any:
    """One panel per component of a :class:`~pyvene.analysis.patching.SweepResult` with
    ``(layers, positions)`` grids (head grids are drawn with heads as rows)."""
    comps = list(result.values)
    fig = _figure(figsize=(6 * len(comps), 4.5))
    axes = fig.subplots(1, len(comps), squeeze=False)
    for ax, comp in zip(axes[0], comps):
        grid = result.values[comp]
        if grid.dim() == 2 and result.heads is not None and grid.shape[1] == len(result.heads):
            labels = [f"head {h}" for h in result.heads]
        else:
            labels = list(tokens or result.tokens or [str(p) for p in result.positions])
        if grid.dim() != 2:
            grid = grid.mean(dim=-1)
            labels = [f"head {h}" for h in result.heads]
        plot_heatmap(grid, labels, result.layers, ax=ax, title=comp, cmap="RdBu_r")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
