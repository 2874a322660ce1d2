"""Analysis: batched activation-patching sweeps, ROME causal tracing, head sweeps, plots.

* :func:`patching_sweep` / :func:`head_sweep`: the full grid of a metric, as one batched job.
* :func:`causal_trace`: ROME's three grids (hidden states, MLP runs, attention runs).
* :func:`trace_dataset`: causal tracing over a dataset of facts, packed, streamed to a run
  folder and resumable, sharded over ``torch.distributed`` ranks; ROME's bucketed averages.
* :func:`run_jobs`: the packed engine behind it (many prompts' cells in shared batches).
* :func:`attribution_patching`: AtP / AtP* estimates of every cell (heads, neurons, positions)
  from two forwards and one backward, with exact verification of the top cells.
* :func:`plot_heatmap` / :func:`plot_trace` / :func:`plot_sweep`: PNG, SVG or PDF figures.
"""

from .attribution import AttributionResult, attribution_patching, verify_result
from .attribution_verify import Verification
from .cells import Cell, run_cells
from .dataset_trace import DatasetTraceResult, load_trace_dataset, trace_dataset
from .metrics import as_metric, logit_difference, token_probability
from .packed import Job, run_jobs
from .patching import SweepResult, head_sweep, patching_sweep, window_layers
from .plots import plot_heatmap, plot_sweep, plot_trace
from .tracing import TraceInputError, TraceResult, causal_trace, corrupt_embeddings, subject_span

__all__ = [
    "AttributionResult",
    "Verification",
    "attribution_patching",
    "verify_result",
    "Cell",
    "DatasetTraceResult",
    "Job",
    "SweepResult",
    "TraceInputError",
    "TraceResult",
    "as_metric",
    "causal_trace",
    "corrupt_embeddings",
    "head_sweep",
    "load_trace_dataset",
    "logit_difference",
    "patching_sweep",
    "plot_heatmap",
    "plot_sweep",
    "plot_trace",
    "run_cells",
    "run_jobs",
    "subject_span",
    "token_probability",
    "trace_dataset",
    "window_layers",
]
