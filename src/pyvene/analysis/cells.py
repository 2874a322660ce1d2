"""The batched cell engine behind every sweep.

A :class:`Cell` restores (copies source into base) one component at some layers, some
positions and optionally one head. :func:`run_cells` evaluates many cells, one batch row per
(cell, base example), each row patched at its own site, with no host sync per cell:

* one source run collects every activation the cells read; one base run records the same
  sites, each layer's input hidden state and the keys/values;
* a row's leading positions that are no-ops are dropped: those before the base example's
  first input difference in a causal decoder (:mod:`.noop`: the shared prefix of an IOI
  pair, the tokens before a traced subject), and those where the source activation equals
  the base run's bitwise at every patched layer; a row with nothing left is the base run's
  value and is not computed;
* a row starts at its first patched layer from the base run's hidden state (a
  ``block_output`` patch at ``l`` is a ``block_input`` patch at ``l+1``), computes only the
  positions from its first patched one on, and attends to the base run's cached keys/values
  of earlier positions (:mod:`.stack`). Rows with different first positions share a batch:
  they are bucketed by first position (a cost model weighs a layer call's overhead against
  the extra positions a lower bucket start computes), and rows join their batch at their
  first layer;
* at the last layer only the last position's attention output and MLP are computed (the
  metric reads the last position only); logits are computed for the last position only;
  rows are chunked to a memory budget.

Models without a layer adapter use whole-model runs of the packed rows (same patch hooks).

Cell: one sweep grid entry (component x layers x positions [x head]); SweepSite: a
:class:`~pyvene.families.HookSite` with the raw columns a sweep compares and patches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..devices import site_device
from ..errors import ConfigError, DimensionMismatchError, LocationError
from ..families import resolve_site
from ..gather import part_columns
from ..hooks import HookSession
from .noop import diff_starts
from .patches import RowPatches, row_entries
from .planning import plan_chunks, plan_rows
from .stack import LayerStack, Placed, PrefixKV, layer_kv, layer_stack, moved, run_cache


@dataclass(frozen=True)
class Cell:
    """Restore ``component`` at ``layers`` and ``positions`` (and only ``head``, if given)."""

    component: str
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    head: int | None = None


def sweep_inputs(x: Any) -> dict[str, torch.Tensor]:
    """A tensor of ids, or a dict / BatchEncoding with ``input_ids`` or ``inputs_embeds``."""
    if isinstance(x, torch.Tensor):
        x = {"input_ids": x if x.dim() == 2 else x[None]}
    inputs = {k: v for k, v in dict(x).items() if v is not None}
    mask = inputs.pop("attention_mask", None)
    if mask is not None and not bool(mask.bool().all()):
        raise ConfigError("sweeps need unpadded inputs (an attention_mask with zeros was given)")
    inputs.pop("token_type_ids", None)
    if "input_ids" not in inputs and "inputs_embeds" not in inputs:
        raise ConfigError(
            f"an input needs 'input_ids' or 'inputs_embeds', got keys {sorted(inputs)}"
        )
    return inputs


def check_position(p: int, seq: int) -> int:
    """``p`` in ``0..seq-1`` (negative counts from the end), else a :class:`LocationError`."""
    if not -seq <= int(p) < seq:
        raise LocationError(f"position {p} is out of range for inputs of length {seq}")
    return int(p) % seq


def input_shape(inputs: dict[str, torch.Tensor]) -> tuple[int, int]:
    """``(batch, length)`` of an input dict."""
    t = inputs.get("input_ids", inputs.get("inputs_embeds"))
    return int(t.shape[0]), int(t.shape[1])


def _take(inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in inputs.items()}


def forward_last(
    model: nn.Module, inputs: dict[str, Any], **extra: Any
) -> tuple[Any, torch.Tensor]:
    """The model output and its last position's logits (only those computed when the model
    takes ``logits_to_keep``)."""
    try:
        out = model(**inputs, logits_to_keep=1, **extra)
    except TypeError:
        out = model(**inputs, **extra)
    return out, out.logits[:, -1]


def canonical_cells(cells: Sequence[Cell], seq: int, n_layers: int | None) -> list[Cell]:
    """Positions checked and sorted, layers sorted; with a layer adapter, ``block_output``
    at a single layer ``l < L-1`` becomes ``block_input`` at ``l+1`` (the same patch)."""
    todo = []
    for c in cells:
        if n_layers and c.component == "block_output" and len(c.layers) == 1:
            if c.layers[0] < n_layers - 1:
                c = Cell("block_input", (c.layers[0] + 1,), c.positions, c.head)
        positions = tuple(sorted({check_position(p, seq) for p in c.positions}))
        todo.append(Cell(c.component, tuple(sorted(set(c.layers))), positions, c.head))
    if any(not c.layers for c in todo):
        raise ConfigError("every cell needs at least one layer")
    return todo


def token_major_width(component: str, layer: int, shape: torch.Size) -> int:
    """The width of a collected ``(batch, position, width)`` activation; more dims (GPT-2's
    ``attention_weight``) are refused: positions would index dim 1 (its heads)."""
    if len(shape) > 3:
        raise ConfigError(
            f"{component!r} at layer {layer} is a {tuple(shape)} tensor, not (batch, position, "
            "width): sweeps and attribution patch positions, which would index its dim 1 "
            "(heads of attention_weight). Sweep heads with head_sweep on "
            "'head_attention_value_output', or intervene on it with IntervenableModel"
        )
    return shape[-1]


class SweepSite:
    """A sweep's view of one (component, layer): its resolved :class:`HookSite` and the raw
    columns of its units (heads flattened in order), which sweeps compare and patch."""

    def __init__(self, model: nn.Module, comp: str, layer: int, width: int) -> None:
        self.site = site = resolve_site(model, layer, comp)
        self.comp, self.layer, self.width = comp, layer, width
        self.cols = part_columns(site.part, width)
        self.heads = site.heads
        n = width if self.cols is None else len(self.cols)
        if self.heads is not None and n % self.heads:
            raise DimensionMismatchError(
                f"{comp}: width {n} does not split into {self.heads} heads"
            )
        self.head_dim = None if self.heads is None else n // self.heads

    def unit_cols(self, head: int | None) -> torch.Tensor | None:
        """Raw columns of ``head`` (None: the whole component; None again if that is all)."""
        if head is None:
            return self.cols
        if self.heads is None:
            raise ConfigError(
                f"component {self.comp!r} has no heads; heads= needs a head_* component"
            )
        if not 0 <= head < self.heads:
            raise LocationError(
                f"head {head} out of range for {self.comp!r} ({self.heads} heads: 0..{self.heads - 1})"
            )
        return self.head_columns()[head]

    def head_columns(self) -> torch.Tensor:
        """``(heads, head_dim)``: the raw columns of every head."""
        cols = self.cols if self.cols is not None else torch.arange(self.width)
        return cols.view(self.heads, self.head_dim)

    def differs(self, src: torch.Tensor, base: torch.Tensor) -> tuple[list, list | None]:
        """Where the source differs from the base run: ``[b][p]`` (whole component) and,
        for head components, ``[b][p][h]``."""
        if self.cols is not None:
            src, base = src[..., self.cols], base[..., self.cols]
        ne = src != base
        if self.heads is None:
            return ne.any(-1).tolist(), None
        ne = ne.unflatten(-1, (self.heads, self.head_dim)).any(-1)
        return ne.any(-1).tolist(), ne.tolist()


def collect_runs(model: nn.Module, inputs: dict, sites, stack: LayerStack | None):
    """One run: the activations at ``sites`` ((component, layer) pairs), with a stack every
    layer's input (key ``("__in__", k)``), the output and the last position's logits."""
    store: dict[Any, torch.Tensor] = {}
    with HookSession() as session:
        for comp, layer in sorted(sites):
            site = resolve_site(model, layer, comp)

            def keep(t, key=(comp, layer)):
                store[key] = t.detach().clone()

            session.on(site.module, site.hook, keep)
        if stack is not None:
            for k, module in enumerate(stack.layers):

                def keep_in(t, key=("__in__", k)):
                    store[key] = t.detach()

                session.on_input(module, keep_in)
            out, last = forward_last(model, inputs, use_cache=True)
        else:
            out, last = forward_last(model, inputs)
    return store, out, last


class SweepRuns:
    """One sweep's collected runs and planned rows: the canonical cells (``todo``), the
    source / base stores, the base and source metrics, the (cell, base example) rows left to
    compute and ``values`` (cells x base examples) holding the rows equal to the base run.

    Built in two steps: the constructor checks the inputs and lists the (component, layer)
    sites the cells read (``keys``); :meth:`collect` runs the source and the base
    (:func:`collect_runs`) and :meth:`finish` plans the rows from the two stores (packed jobs
    collect many sweeps' runs in shared batches, :mod:`.padded`, then call :meth:`finish`)."""

    def __init__(
        self, base, source, cells, metric, n_layers, where: str = "", diff_start=None
    ) -> None:
        base, source = sweep_inputs(base), sweep_inputs(source)
        (nb, seq), (ns, sseq) = input_shape(base), input_shape(source)
        if sseq != seq:
            raise DimensionMismatchError(
                f"{where}base and source must have the same length (got {seq} and {sseq})"
            )
        if ns not in (1, nb):
            raise DimensionMismatchError(
                f"{where}source batch must be 1 or the base batch {nb} (got {ns})"
            )
        self.todo = todo = canonical_cells(cells, seq, n_layers)
        self.keys = {(c.component, k) for c in todo for k in c.layers}
        self.base, self.source, self.metric, self.n_layers = base, source, metric, n_layers
        self.nb, self.ns, self.seq = nb, ns, seq
        self.diff_start = diff_start  # declared first input difference (see .noop)
        self.out: Any = None

    def collect(self, model: nn.Module, stack: LayerStack | None, sites: dict) -> None:
        """The source and the base run of this sweep alone, then :meth:`finish`."""
        src, _, src_last = collect_runs(model, self.source, self.keys, None)
        store, self.out, base_last = collect_runs(model, self.base, self.keys, stack)
        self.finish(model, sites, src, store, src_last, base_last)

    def finish(self, model, sites, src, store, src_last, base_last) -> None:
        """Plan the rows from the collected stores (``(rows, seq, width)`` per site) and the
        last position's logits of the source and the base run. New (component, layer) sites
        are added to ``sites`` (shared across packed jobs)."""
        self.src, self.store = src, store
        for key in sorted(self.keys - set(sites)):
            sites[key] = SweepSite(model, *key, token_major_width(*key, src[key].shape))
        for comp, layer, head in {(c.component, c.layers[0], c.head) for c in self.todo}:
            sites[(comp, layer)].unit_cols(head)  # raises for a head the component lacks
        metric, nb = self.metric, self.nb
        self.base_rows = metric(base_last).float()
        self.src_value, self.base_value = metric(src_last).float().mean(), self.base_rows.mean()
        starts = diff_starts(model, self.base, self.source, self.diff_start, nb, self.seq)
        self.rows, known = plan_rows(self.todo, nb, sites, src, store, self.n_layers, starts)
        self.values = torch.empty(len(self.todo), nb, device=base_last.device)
        if known:
            ci, bi = (torch.tensor(x, device=base_last.device) for x in zip(*known))
            self.values[ci, bi] = self.base_rows[bi]


def sweep_stack(model: nn.Module, seq: int, method: str) -> LayerStack | None:
    """The layer adapter a sweep of ``method`` runs on (None: whole-model runs)."""
    if method not in ("auto", "stack", "full"):
        raise ConfigError(f"method {method!r}: choose 'auto', 'stack' or 'full'")
    stack = layer_stack(model, seq) if method in ("auto", "stack") else None
    if method == "stack" and stack is None:
        raise ConfigError(f"no layer adapter for model type {model.config.model_type!r}")
    return stack


def run_cells(
    model: nn.Module,
    base: Any,
    source: Any,
    cells: Sequence[Cell],
    metric: Callable[[torch.Tensor], torch.Tensor],
    *,
    method: str = "auto",
    max_rows: int | None = None,
    memory_budget: int = 1 << 29,
    progress: bool | Any = False,
    overhead_tokens: float | None = None,
    diff_start: int | Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Metric of every cell (averaged over base examples), plus the base and source metrics.

    ``method``: "auto" (layer adapter when the family has one, else whole-model runs),
    "stack" (require the adapter) or "full" (whole-model runs). ``progress``: a bool, or a
    tqdm-like object with ``update(n)`` and ``total``. ``overhead_tokens``: a layer call's
    cost in token-layers, for bucketing rows by first position (default per device type:
    :data:`OVERHEAD_TOKENS`; 0 = one bucket per first position, ``inf`` = one bucket).
    ``diff_start``: the first position where the base inputs differ from the source's (one
    int, or one per base example), for inputs whose ids do not show it (``inputs_embeds``);
    cells patching only earlier positions are the base run's value (:mod:`.noop`).
    """
    seq = input_shape(sweep_inputs(base))[1]
    stack = sweep_stack(model, seq, method)
    sites: dict[tuple[str, int], SweepSite] = {}
    with torch.no_grad():
        n_layers = stack.num_layers if stack else None
        runs = SweepRuns(base, source, cells, metric, n_layers, diff_start=diff_start)
        runs.collect(model, stack, sites)
        values, device = runs.values, runs.values.device
        plan, overhead = plan_chunks(
            runs.rows, stack, model, seq, max_rows, memory_budget, overhead_tokens, device
        )
        bar = progress_bar(progress, sum(work for _, _, work in plan))
        on_site = site_devices(model, sites, device)
        for q_start, chunk, _ in plan:
            entries = row_entries(chunk, runs.todo, runs.ns)
            patches = RowPatches(entries, sites, runs.src, seq, q_start, on_site)
            row_b = torch.tensor([r.b for r in chunk], device=device)
            if stack is not None:
                out = _run_stack(stack, patches, chunk, runs, row_b, bar, overhead)
            else:
                with HookSession() as session:
                    patches.install(session)
                    out = forward_last(model, _take(runs.base, row_b.to(_input_device(runs.base))))[
                        1
                    ]
                if bar is not None:
                    bar.update(len(chunk))
            cell_ids = torch.tensor([r.cell for r in chunk], device=device)
            values[cell_ids, row_b] = metric(out).float().to(device)
        if bar is not None and progress is True:
            bar.close()
    return values.mean(dim=1), runs.base_value, runs.src_value


def site_devices(model: nn.Module, sites: dict, default: torch.device) -> Callable[..., Any]:
    """``(component, layer) -> device`` of each sweep site (``default`` when unknown)."""
    devices = {key: site_device(model, s.site) or default for key, s in sites.items()}
    return devices.__getitem__


def _input_device(inputs: dict[str, torch.Tensor]) -> torch.device:
    return next(iter(inputs.values())).device


def _run_stack(stack, patches, chunk, runs, row_b, bar, overhead):
    cache, store = run_cache(runs.out), runs.store
    q_start, q_len, seq = patches.q_start, patches.q_len, patches.seq
    starts = [r.start for r in chunk]
    first, n_layers = starts[0], stack.num_layers
    sample = store[("__in__", first)]
    # the mask / rotary tables and the row indices: one copy per layer device per call
    per_call = Placed((stack.layer_kwargs(q_start, seq, sample.dtype, sample.device), row_b))
    one_base = runs.nb == 1
    hidden, n_active = None, 0
    with HookSession() as session:
        patches.install(session)
        if q_len > 1:  # the last layer: attention output and MLP of the last position only
            for module in stack.tail_modules(n_layers - 1):
                session.on_input(module, lambda t: t[:, -1:])
        for k in range(first, n_layers):
            device = stack.layer_devices[k]
            kwargs, rows_here = per_call.on(device)
            n_new = 0
            while n_active + n_new < len(starts) and starts[n_active + n_new] == k:
                n_new += 1
            if n_new:
                add = store[("__in__", k)][:, q_start:]
                if one_base:
                    add = add.expand(n_new, -1, -1)
                else:
                    add = add.index_select(0, rows_here[n_active : n_active + n_new].to(add.device))
                add = moved(add, device)
                hidden = add if hidden is None else torch.cat([moved(hidden, device), add], dim=0)
                n_active += n_new
            keys, vals = layer_kv(cache, k)
            keys, vals = keys[:, :, :q_start], vals[:, :, :q_start]
            if one_base:
                keys = keys.expand(n_active, -1, -1, -1)
                vals = vals.expand(n_active, -1, -1, -1)
            else:
                rows = rows_here[:n_active].to(keys.device)
                keys, vals = keys.index_select(0, rows), vals.index_select(0, rows)
            keys, vals = moved(keys, device), moved(vals, device)
            hidden = stack.run_layer(k, hidden, PrefixKV(keys, vals), kwargs)
            if bar is not None:
                bar.update(n_active * q_len + overhead)
    return stack.logits(hidden[:, -1])


def progress_bar(progress: bool | Any, total: float) -> Any:
    """A tqdm bar over modelled work (token-layers plus call overhead), shown as percent;
    ``progress`` may be a tqdm-like object (its ``total`` set if unset); None when off."""
    if progress is False or progress is None:
        return None
    if progress is not True:
        if getattr(progress, "total", None) is None:
            progress.total = total
        return progress
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc="patching", leave=False, dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
    )  # fmt: skip
