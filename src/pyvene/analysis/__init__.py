"""Analysis: batched activation-patching sweeps, ROME causal tracing, head sweeps, plots."""

from .cells import Cell, run_cells
from .metrics import as_metric, logit_difference, token_probability
from .patching import SweepResult, head_sweep, patching_sweep, window_layers

__all__ = [
    "Cell",
    "SweepResult",
    "as_metric",
    "head_sweep",
    "logit_difference",
    "patching_sweep",
    "run_cells",
    "token_probability",
    "window_layers",
]
