"""The batched cell engine behind every sweep.

A :class:`Cell` restores (copies source into base) one component at some layers, some
positions and optionally one head. :func:`run_cells` evaluates many cells as batch rows, each
row patched at its own site, with no host sync per cell:

* one source run collects every activation the cells read; one base run records each layer's
  input hidden state and keys/values;
* cells are grouped by (component, positions); a group's rows start at their own first
  patched layer from the base run's hidden state (a ``block_output`` patch at ``l`` starts at
  ``l+1`` as a ``block_input`` patch), compute only positions ``>= min(positions)`` and attend
  to the base run's cached keys/values of earlier positions (:mod:`.stack`);
* logits are computed for the last position only; rows are chunked to a memory budget.

Models without a layer adapter use whole-model runs of the packed rows (same patch hooks).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..families import resolve_site
from ..hooks import HookSession
from .stack import LayerStack, PrefixKV, layer_stack


@dataclass(frozen=True)
class Cell:
    """Restore ``component`` at ``layers`` and ``positions`` (and only ``head``, if given)."""

    component: str
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    head: int | None = None


def as_inputs(x: Any) -> dict[str, torch.Tensor]:
    """A tensor of ids, or a dict / BatchEncoding with ``input_ids`` or ``inputs_embeds``."""
    if isinstance(x, torch.Tensor):
        x = {"input_ids": x if x.dim() == 2 else x[None]}
    inputs = {k: v for k, v in dict(x).items() if v is not None}
    mask = inputs.pop("attention_mask", None)
    if mask is not None and not bool(mask.bool().all()):
        raise ValueError("sweeps need unpadded inputs (an attention_mask with zeros was given)")
    inputs.pop("token_type_ids", None)
    if "input_ids" not in inputs and "inputs_embeds" not in inputs:
        raise ValueError("an input needs 'input_ids' or 'inputs_embeds'")
    return inputs


def _shape(inputs: dict[str, torch.Tensor]) -> tuple[int, int]:
    t = inputs.get("input_ids", inputs.get("inputs_embeds"))
    return int(t.shape[0]), int(t.shape[1])


def _take(inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in inputs.items()}


def _last_logits(model: nn.Module, inputs: dict[str, Any], **extra: Any) -> torch.Tensor:
    try:
        out = model(**inputs, logits_to_keep=1, **extra)
    except TypeError:
        out = model(**inputs, **extra)
    return out, out.logits[:, -1]


def _canonical(cell: Cell, n_layers: int) -> Cell:
    """``block_output`` at a single layer ``l < L-1`` equals ``block_input`` at ``l+1``."""
    if cell.component == "block_output" and len(cell.layers) == 1 and cell.layers[0] < n_layers - 1:
        return Cell("block_input", (cell.layers[0] + 1,), cell.positions, cell.head)
    return cell


class _Patcher:
    """Patch hooks for one group (component, positions) of rows."""

    def __init__(self, model, component, positions, q_start, cells, row_cell, row_src, sources):
        self.model, self.component = model, component
        self.pos_abs = torch.tensor(positions)
        self.pos_rel = self.pos_abs - q_start
        self.cells, self.row_cell, self.row_src, self.sources = cells, row_cell, row_src, sources
        by_layer: dict[int, list[int]] = defaultdict(list)
        for r, c in enumerate(row_cell):
            for layer in cells[c].layers:
                by_layer[layer].append(r)
        self.by_layer = {k: torch.tensor(v) for k, v in by_layer.items()}
        self.sites = {k: resolve_site(model, k, component) for k in self.by_layer}

    def columns(self, site, rows: torch.Tensor, width: int) -> torch.Tensor | None:
        heads = [self.cells[self.row_cell[r]].head for r in rows.tolist()]
        if site.part is None and all(h is None for h in heads):
            return None
        a, b = site.part if site.part is not None else (0, width)
        mask = torch.zeros(len(heads), 1, width, dtype=torch.bool)
        for i, h in enumerate(heads):
            if h is None:
                mask[i, :, a:b] = True
            else:
                if site.heads is None:
                    raise ValueError(f"component {self.component!r} has no heads")
                mask[i, :, a + h * site.dim : a + (h + 1) * site.dim] = True
        return mask

    def install(self, session: HookSession, layer: int) -> None:
        """Patch this group's rows that restore ``layer`` (row ``r`` is batch row ``r``)."""
        rows = self.by_layer.get(layer)
        if rows is None:
            return
        site = self.sites[layer]
        src = self.sources[(self.component, layer)][self.row_src[rows]][:, self.pos_abs]
        cols: list[Any] = []

        def patch(act: torch.Tensor) -> torch.Tensor:
            if not cols:
                m = self.columns(site, rows, act.shape[-1])
                r, p = rows[:, None].to(act.device), self.pos_rel[None, :].to(act.device)
                cols.extend([None if m is None else m.to(act.device), r, p])
            mask, r, p = cols
            act = act.clone()
            new = src.to(act.dtype)
            if mask is not None:
                new = torch.where(mask, new, act[r, p])
            act[r, p] = new
            return act

        session.on(site.module, site.hook, patch)


def _collect(model, inputs, sites: set[tuple[str, int]], stack: LayerStack | None):
    """One run: the activations at ``sites`` and (with a stack) every layer's input."""
    store: dict[Any, torch.Tensor] = {}
    with HookSession() as session:
        for comp, layer in sorted(sites):
            site = resolve_site(model, layer, comp)

            def keep(t, key=(comp, layer)):
                store[key] = t.detach()

            session.on(site.module, site.hook, keep)
        if stack is not None:
            for k, module in enumerate(stack.layers):

                def keep_in(t, key=("__in__", k)):
                    store[key] = t.detach()

                session.on_input(module, keep_in)
            out, last = _last_logits(model, inputs, use_cache=True)
        else:
            out, last = _last_logits(model, inputs)
    return store, out, last


def _kv(cache: Any, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(cache, "layers"):
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Metric of every cell (averaged over base examples), plus the base and source metrics.

    ``method``: "auto" (layer adapter when the family has one, else whole-model runs),
    "stack" (require the adapter) or "full" (whole-model runs). ``progress``: a bool, or a
    tqdm-like object with ``update(n)`` and ``total``.
    """
    base, source = as_inputs(base), as_inputs(source)
    (nb, seq), (ns, sseq) = _shape(base), _shape(source)
    if sseq != seq:
        raise ValueError(f"base and source must have the same length (got {seq} and {sseq})")
    if ns not in (1, nb):
        raise ValueError(f"source batch must be 1 or the base batch {nb} (got {ns})")
    stack = layer_stack(model, seq) if method in ("auto", "stack") else None
    if method == "stack" and stack is None:
        raise ValueError(f"no layer adapter for model type {model.config.model_type!r}")
    n_layers = stack.num_layers if stack is not None else None
    todo = [_canonical(c, n_layers) if n_layers else c for c in cells]
    sites = {(c.component, k) for c in todo for k in c.layers}
    with torch.no_grad():
        sources, _, src_last = _collect(model, source, sites, None)
        if stack is not None:
            base_store, base_out, base_last = _collect(model, base, set(), stack)
        else:
            base_last = _last_logits(model, base)[1]
        device = base_last.device
        src_value, base_value = metric(src_last).float().mean(), metric(base_last).float().mean()
        groups: dict[tuple[str, tuple[int, ...]], list[int]] = defaultdict(list)
        for i, c in enumerate(todo):
            groups[(c.component, c.positions)].append(i)
        values = torch.empty(len(todo), nb, device=device)
        bar = _bar(progress, groups, todo, stack, nb, seq, max_rows, memory_budget, model)
        for (comp, positions), members in groups.items():
            members.sort(key=lambda i: min(todo[i].layers))
            q_start = min(positions) if stack is not None else 0
            rows_per = _rows_per_chunk(model, seq - q_start, max_rows, memory_budget)
            flat = [(i, b) for i in members for b in range(nb)]
            for lo in range(0, len(flat), rows_per):
                chunk = flat[lo : lo + rows_per]
                local = sorted({i for i, _ in chunk})
                index = {i: j for j, i in enumerate(local)}
                row_cell = [index[i] for i, _ in chunk]
                row_b = torch.tensor([b for _, b in chunk], device=device)
                row_src = row_b if ns > 1 else torch.zeros_like(row_b)
                ccells = [todo[i] for i in local]
                patcher = _Patcher(
                    model, comp, positions, q_start, ccells, row_cell, row_src, sources
                )
                if stack is not None:
                    starts = [min(ccells[c].layers) for c in row_cell]
                    out = _run_stack(
                        stack, patcher, base_store, base_out, row_b, starts, q_start, bar
                    )
                else:
                    with HookSession() as session:
                        for layer in patcher.by_layer:
                            patcher.install(session, layer)
                        out = _last_logits(model, _take(base, row_b.cpu()))[1]
                    if bar is not None:
                        bar.update(1)
                vals = metric(out).float()
                cell_ids = torch.tensor([i for i, _ in chunk], device=device)
                values[cell_ids, row_b] = vals
        if bar is not None and progress is True:
            bar.close()
    return values.mean(dim=1), base_value, src_value


def _run_stack(stack, patcher, store, base_out, row_b, starts, q_start, bar) -> torch.Tensor:
    cache = base_out.past_key_values
    first = starts[0]
    hidden = None
    n_active = 0
    one_base = int(row_b.max()) == 0 if len(row_b) else True
    sample = store[("__in__", first)]
    kwargs = stack.layer_kwargs(q_start, sample.shape[1], sample.dtype, sample.device)
    for k in range(first, stack.num_layers):
        n_new = 0
        while n_active + n_new < len(starts) and starts[n_active + n_new] == k:
            n_new += 1
        if n_new:
            add = store[("__in__", k)][row_b[n_active : n_active + n_new], q_start:]
            hidden = add if hidden is None else torch.cat([hidden, add], dim=0)
            n_active += n_new
        keys, vals = _kv(cache, k)
        if one_base:
            keys = keys[:1, :, :q_start].expand(n_active, -1, -1, -1)
            vals = vals[:1, :, :q_start].expand(n_active, -1, -1, -1)
        else:
            keys, vals = keys[row_b[:n_active], :, :q_start], vals[row_b[:n_active], :, :q_start]
        with HookSession() as session:
            patcher.install(session, k)
            hidden = stack.run_layer(k, hidden, PrefixKV(keys, vals), kwargs)
        if bar is not None:
            bar.update(1)
    return stack.logits(hidden[:, -1])


def _rows_per_chunk(model, q_len: int, max_rows: int | None, budget: int) -> int:
    if max_rows:
        return int(max_rows)
    cfg = model.config
    d = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 768)
    inter = getattr(cfg, "intermediate_size", None) or 4 * d
    vocab = getattr(cfg, "vocab_size", 50000)
    per_row = 4 * (q_len * (8 * d + 3 * inter + 4 * q_len) + 3 * vocab)
    return max(1, budget // per_row)


def _bar(progress, groups, todo, stack, nb, seq, max_rows, budget, model):
    if progress is False or progress is None:
        return None
    if progress is not True:
        return progress
    from tqdm.auto import tqdm

    total = 0
    for (_, positions), members in groups.items():
        q_start = min(positions) if stack is not None else 0
        per = _rows_per_chunk(model, seq - q_start, max_rows, budget)
        ordered = sorted(members, key=lambda i: min(todo[i].layers))
        flat = [i for i in ordered for _ in range(nb)]
        for lo in range(0, len(flat), per):
            first = min(todo[flat[lo]].layers)
            total += (stack.num_layers - first) if stack is not None else 1
    return tqdm(total=total, desc="patching", unit="step", leave=False)
