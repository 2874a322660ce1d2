"""Analysis: batched activation-patching sweeps, ROME causal tracing, head sweeps, plots.

* :func:`patching_sweep` / :func:`head_sweep`: the full grid of a metric, as one batched job.
* :func:`causal_trace`: ROME's three grids (hidden states, MLP runs, attention runs).
* :func:`plot_heatmap` / :func:`plot_trace` / :func:`plot_sweep`: PNG, SVG or PDF figures.
"""

from .cells import Cell, run_cells
from .metrics import as_metric, logit_difference, token_probability
from .patching import SweepResult, head_sweep, patching_sweep, window_layers
from .plots import plot_heatmap, plot_sweep, plot_trace
from .tracing import TraceInputError, TraceResult, causal_trace, corrupt_embeddings, subject_span

__all__ = [
    "Cell",
    "SweepResult",
    "TraceInputError",
    "TraceResult",
    "as_metric",
    "causal_trace",
    "corrupt_embeddings",
    "head_sweep",
    "logit_difference",
    "patching_sweep",
    "plot_heatmap",
    "plot_sweep",
    "plot_trace",
    "run_cells",
    "subject_span",
    "token_probability",
    "window_layers",
]
