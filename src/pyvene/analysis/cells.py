"""The batched cell engine behind every sweep.

A :class:`Cell` restores (copies source into base) one component at some layers, some
positions and optionally one head. :func:`run_cells` evaluates many cells, one batch row per
(cell, base example), each row patched at its own site, with no host sync per cell:

* one source run collects every activation the cells read; one base run records the same
  sites, each layer's input hidden state and the keys/values;
* a row's leading positions where the source activation equals the base run's (bitwise, at
  every patched layer: the shared prefix of an IOI pair) are no-ops and are dropped; a row
  with nothing left is the base run's value and is not computed;
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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..devices import site_device
from ..errors import ConfigError, DimensionMismatchError, LocationError
from ..families import resolve_site
from ..hooks import HookSession
from .planning import _chunks, _plan_rows
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


class _Site:
    """A resolved site and the raw columns of its units (heads flattened in order)."""

    def __init__(self, model: nn.Module, comp: str, layer: int, width: int) -> None:
        self.site = site = resolve_site(model, layer, comp)
        self.comp, self.layer, self.width = comp, layer, width
        cols = torch.arange(width)
        part = site.part
        if part is None:
            self.cols = None
        elif isinstance(part, tuple):
            self.cols = cols[part[0] : part[1]]
        else:  # an interleaved part: last dim laid out (groups, parts, width)
            self.cols = cols.view(part.groups, part.parts, -1)[:, part.index, :].reshape(-1)
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
        cols = self.cols if self.cols is not None else torch.arange(self.width)
        return cols[head * self.head_dim : (head + 1) * self.head_dim]

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


def _collect(model, inputs, sites, stack: LayerStack | None):
    """One run: the activations at ``sites`` and (with a stack) every layer's input."""
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
            out, last = _last_logits(model, inputs, use_cache=True)
        else:
            out, last = _last_logits(model, inputs)
    return store, out, last


def _kv(cache: Any, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(cache, "layers"):
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]


class _Patches:
    """The patch entries of one chunk, per (component, layer) and kind (whole component or
    one head): flat destination rows ``r * q_len + p`` (batch row, relative position), raw
    columns (None: all) and the source values, plus the subset at the last position for
    the last layer's cut (see :meth:`.stack.LayerStack.tail_modules`)."""

    def __init__(self, chunk, todo, sites, src, ns, q_start, seq, devices) -> None:
        lists: dict[tuple[str, int, bool], list[tuple[int, int, int, int]]] = defaultdict(list)
        for r, row in enumerate(chunk):
            cell = todo[row.cell]
            srow = row.b if ns > 1 else 0
            pos = [p for p in cell.positions if p >= row.q]
            head = -1 if cell.head is None else cell.head
            for k in cell.layers:
                entries = lists[(cell.component, k, cell.head is not None)]
                entries.extend((r, srow, p, head) for p in pos)
        self.q_start, self.q_len, self.seq = q_start, seq - q_start, seq
        self.by_layer: dict[int, list[tuple[_Site, tuple, tuple]]] = defaultdict(list)
        for (comp, k, is_head), entries in lists.items():
            site, device = sites[(comp, k)], devices[(comp, k)]  # built on the layer's device
            r, srow, p, head = torch.tensor(entries, dtype=torch.long).T.contiguous()
            value = src[(comp, k)]
            rows = value.reshape(-1, value.shape[-1]).index_select(
                0, (srow * seq + p).to(value.device)
            )
            if is_head:
                all_cols = site.cols if site.cols is not None else torch.arange(site.width)
                cols = all_cols.view(site.heads, site.head_dim)[head]  # (N, head_dim)
                vals = rows.gather(1, cols.to(rows.device))
            elif site.cols is not None:
                cols = site.cols.expand(len(r), -1)
                vals = rows.index_select(1, site.cols.to(rows.device))
            else:
                cols, vals = None, rows
            last = p == seq - 1
            full = self._spec(r * self.q_len + p - q_start, cols, vals, site.width, device)
            tail = self._spec(r[last], None if cols is None else cols[last],
                              vals[last.to(vals.device)], site.width, device)  # fmt: skip
            self.by_layer[k].append((site, full, tail))

    @staticmethod
    def _spec(dst, cols, vals, width, device):
        """``(index, vals)`` for ``index_copy_`` into the flattened activation: rows of
        ``(rows * positions, width)``, or single elements when only some columns change."""
        if cols is not None:
            dst = (dst[:, None] * width + cols).reshape(-1)
            vals = vals.reshape(-1)
        return dst.to(device), vals.to(device), cols is None

    def install(self, session: HookSession) -> None:
        for specs in self.by_layer.values():
            for site, full, tail in specs:
                session.on(site.site.module, site.site.hook, self._hook(full, tail))

    def _hook(self, full, tail):
        q_len = self.q_len

        def patch(act: torch.Tensor) -> torch.Tensor | None:
            n = act.shape[1]
            if n == q_len:
                dst, vals, whole = full
            elif n == 1:  # the last layer computes the last position only (see .stack)
                dst, vals, whole = tail
            else:
                raise RuntimeError(f"sweep patch: expected {q_len} positions, got {n}")
            if dst.numel() == 0:
                return None
            act = act.clone(memory_format=torch.contiguous_format)
            flat = act.view(-1, act.shape[-1]) if whole else act.view(-1)
            flat.index_copy_(0, dst, vals.to(act.dtype))
            return act

        return patch


def run_cells(  # noqa: C901  # #14: refactor
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Metric of every cell (averaged over base examples), plus the base and source metrics.

    ``method``: "auto" (layer adapter when the family has one, else whole-model runs),
    "stack" (require the adapter) or "full" (whole-model runs). ``progress``: a bool, or a
    tqdm-like object with ``update(n)`` and ``total``. ``overhead_tokens``: a layer call's
    cost in token-layers, for bucketing rows by first position (default per device type:
    :data:`OVERHEAD_TOKENS`; 0 = one bucket per first position, ``inf`` = one bucket).
    """
    base, source = as_inputs(base), as_inputs(source)
    (nb, seq), (ns, sseq) = _shape(base), _shape(source)
    if sseq != seq:
        raise DimensionMismatchError(
            f"base and source must have the same length (got {seq} and {sseq})"
        )
    if ns not in (1, nb):
        raise DimensionMismatchError(f"source batch must be 1 or the base batch {nb} (got {ns})")
    stack = layer_stack(model, seq) if method in ("auto", "stack") else None
    if method == "stack" and stack is None:
        raise ConfigError(f"no layer adapter for model type {model.config.model_type!r}")
    n_layers = stack.num_layers if stack is not None else None
    todo = []
    if method not in ("auto", "stack", "full"):
        raise ConfigError(f"method {method!r}: choose 'auto', 'stack' or 'full'")
    for c in cells:
        c = _canonical(c, n_layers) if n_layers else c
        positions = tuple(sorted({check_position(p, seq) for p in c.positions}))
        todo.append(Cell(c.component, tuple(sorted(set(c.layers))), positions, c.head))
    if any(not c.layers for c in todo):
        raise ConfigError("every cell needs at least one layer")
    keys = {(c.component, k) for c in todo for k in c.layers}
    with torch.no_grad():
        src_store, _, src_last = _collect(model, source, keys, None)
        base_store, base_out, base_last = _collect(model, base, keys, stack)
        device = base_last.device
        sites = {key: _Site(model, *key, src_store[key].shape[-1]) for key in sorted(keys)}
        for comp, layer, head in {(c.component, c.layers[0], c.head) for c in todo}:
            sites[(comp, layer)].unit_cols(head)  # raises for a head the component lacks
        base_rows = metric(base_last).float()
        src_value, base_value = metric(src_last).float().mean(), base_rows.mean()
        rows, known = _plan_rows(todo, nb, sites, src_store, base_store, n_layers)
        values = torch.empty(len(todo), nb, device=device)
        if known:
            ci, bi = (torch.tensor(x, device=device) for x in zip(*known))
            values[ci, bi] = base_rows[bi]
        plan, overhead = _chunks(
            rows, stack, model, seq, max_rows, memory_budget, overhead_tokens, device
        )
        bar = _bar(progress, plan)
        devices = {key: site_device(model, s.site) or device for key, s in sites.items()}
        for q_start, chunk, _ in plan:
            patches = _Patches(chunk, todo, sites, src_store, ns, q_start, seq, devices)
            row_b = torch.tensor([r.b for r in chunk], device=device)
            if stack is not None:
                out = _run_stack(
                    stack, patches, chunk, base_store, base_out, row_b, nb, bar, overhead
                )
            else:
                with HookSession() as session:
                    patches.install(session)
                    out = _last_logits(model, _take(base, row_b.to(_input_device(base))))[1]
                if bar is not None:
                    bar.update(len(chunk))
            vals = metric(out).float()
            cell_ids = torch.tensor([r.cell for r in chunk], device=device)
            values[cell_ids, row_b] = vals.to(device)
        if bar is not None and progress is True:
            bar.close()
    return values.mean(dim=1), base_value, src_value


def _input_device(inputs: dict[str, torch.Tensor]) -> torch.device:
    return next(iter(inputs.values())).device


def _run_stack(stack, patches, chunk, store, base_out, row_b, nb, bar, overhead):
    cache = base_out.get("cache")  # transformers >= 5.24 (``past_key_values`` before)
    if cache is None:
        cache = base_out.get("past_key_values")
    q_start, q_len, seq = patches.q_start, patches.q_len, patches.seq
    starts = [r.start for r in chunk]
    first, n_layers = starts[0], stack.num_layers
    sample = store[("__in__", first)]
    kwargs = stack.layer_kwargs(q_start, seq, sample.dtype, sample.device)
    one_base = nb == 1
    hidden, n_active = None, 0
    with HookSession() as session:
        patches.install(session)
        if q_len > 1:  # the last layer: attention output and MLP of the last position only
            for module in stack.tail_modules(n_layers - 1):
                session.on_input(module, lambda t: t[:, -1:])
        for k in range(first, n_layers):
            n_new = 0
            while n_active + n_new < len(starts) and starts[n_active + n_new] == k:
                n_new += 1
            if n_new:
                add = store[("__in__", k)][:, q_start:]
                if one_base:
                    add = add.expand(n_new, -1, -1)
                else:
                    add = add.index_select(0, row_b[n_active : n_active + n_new])
                hidden = add if hidden is None else torch.cat([hidden, add], dim=0)
                n_active += n_new
            keys, vals = _kv(cache, k)
            keys, vals = keys[:, :, :q_start], vals[:, :, :q_start]
            if one_base:
                keys = keys.expand(n_active, -1, -1, -1)
                vals = vals.expand(n_active, -1, -1, -1)
            else:
                rows = row_b[:n_active]
                keys, vals = keys.index_select(0, rows), vals.index_select(0, rows)
            hidden = stack.run_layer(k, hidden, PrefixKV(keys, vals), kwargs)
            if bar is not None:
                bar.update(n_active * q_len + overhead)
    return stack.logits(hidden[:, -1])


def _bar(progress, plan):
    """A tqdm bar over modelled work (token-layers plus call overhead), shown as percent."""
    if progress is False or progress is None:
        return None
    total = sum(work for _, _, work in plan)
    if progress is not True:
        if getattr(progress, "total", None) is None:
            progress.total = total
        return progress
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc="patching", leave=False, dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
    )  # fmt: skip
