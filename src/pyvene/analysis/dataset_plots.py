"""ROME's Figure 2 layout for a dataset trace: one panel per grid kind (hidden states, MLP
run, attention run), the six position buckets as rows, layers as columns, colour = the
average indirect effect over the traced records."""

from __future__ import annotations

import os
from typing import Any

from .plots import _CMAPS, _TITLES, _pyplot, plot_heatmap, save_figure


def plot_dataset_trace(result: Any, path: str | os.PathLike[str] | None = None) -> Any:
    """Draw a :class:`~pyvene.analysis.dataset_trace.DatasetTraceResult`; saves to ``path``
    (png, svg or pdf) when given. Returns the figure."""
    from .dataset_trace import BUCKETS

    plt = _pyplot()
    kinds = list(result.kinds)
    width = max(4.0, 0.18 * len(result.layers) + 3.5)
    fig, axes = plt.subplots(1, len(kinds), figsize=(width * len(kinds), 3.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        aie, _ = result.bucket_effects(kind)
        title = "Average indirect effect: " + _TITLES.get(kind, kind).format(w=result.window)
        plot_heatmap(
            aie.T, list(BUCKETS), result.layers, ax=ax, title=title,
            cmap=_CMAPS.get(kind, "Purples"), label="AIE of p(target)",
        )  # fmt: skip
    fig.suptitle(
        f"{len(result.traces)} facts traced ({result.n_skipped} skipped: clean prediction "
        f"not the target), {result.samples} noise samples", fontsize=9,
    )  # fmt: skip
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
