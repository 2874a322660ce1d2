"""Attribution patching (AtP, AtP*): every cell's patching effect from two forwards and one
backward, optionally verified exactly.

The estimate of restoring the source (clean) activation ``a_s`` into the base (corrupted) run
at a cell is ``(a_s - a_b) . dmetric/da``, the gradient taken on the base run (Nanda's
attribution patching; Kramar, Lieberum, Shah, Nanda 2024, "AtP*"). It is the first-order
estimate of ``metric(patched) - metric(base)``, the quantity :func:`patching_sweep` measures
minus the base value. ``method="atp*"`` adds the paper's two fixes:

* QK fix (:mod:`.qk_fix`): query and key cells get the exact attention-pattern change of
  their patch, linearised only after the attention output;
* GradDrop (:mod:`.attribution_grad`): ``L`` further estimates, each with the gradient
  through one layer's residual contribution dropped, combined as in the paper,
  ``1/(L-1) * sum_l |AtP_l(n)|``, and signed here by ``sum_l AtP_l(n)`` so that the grid
  stays comparable with exact effects (the paper ranks by magnitude only).

``verify=K`` reruns the K cells of each component with the largest ``|estimate|`` exactly;
``verify="grid"`` reruns all of them (for small grids), with rank correlation and top-K recall.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, choices_message
from ..families import resolve_site
from .attribution_estimates import ChunkEstimator, Z, graddrop, kind_of, per_pos_of
from .attribution_grad import block_module, collect, grad_pass, site_info
from .attribution_verify import CellSpec, Verification, exact_effects, verification
from .cells import sweep_inputs as as_inputs
from .cells import token_major_width
from .metrics import as_metric
from .patching import SweepResult, num_layers
from .qk_fix import attention_deltas

METHODS = ("atp", "atp*")


@dataclass
class AttributionResult(SweepResult):
    """``values[component]``: estimated effects (``metric(patched) - metric(base)``), indexed
    like :class:`SweepResult`: ``(layers, positions)`` or ``(layers,)`` for whole components,
    ``(layers, units[, positions])`` for heads and neurons. ``exact[component]``: the exact
    effect at verified cells, NaN elsewhere. ``units[component]``: the heads or neurons of
    the second axis (None for whole components). ``verification``: per component."""

    method: str = "atp"
    units: dict[str, list[int] | None] = field(default_factory=dict)
    exact: dict[str, torch.Tensor] = field(default_factory=dict)
    verification: dict[str, Verification] = field(default_factory=dict)

    def top(self, k: int = 10, component: str | None = None) -> list[dict[str, Any]]:
        """The ``k`` cells with the largest ``|estimate|`` (one component or all)."""
        rows = []
        for comp, grid in self.values.items():
            if component is not None and comp != component:
                continue
            flat = grid.flatten()
            for i in flat.abs().topk(min(k, flat.numel())).indices.tolist():
                idx = tuple(int(x) for x in torch.unravel_index(torch.tensor(i), grid.shape))
                ex = self.exact.get(comp)
                exact = float(ex[idx]) if ex is not None else float("nan")
                rows.append({"component": comp, "index": idx, "cell": self.describe(comp, idx),
                             "estimate": float(grid[idx]), "exact": exact})  # fmt: skip
        rows.sort(key=lambda r: -abs(r["estimate"]))
        return rows[:k]

    def plot(self, path: Any = None) -> Any:
        """One heatmap of estimated effects per component (:func:`plot_attribution`); saved
        when ``path`` is given. Notebooks show it when the result is displayed."""
        from .attribution_plots import plot_attribution

        return plot_attribution(self, path)

    def summary(self) -> str:
        """The line above the heatmap in a notebook."""
        return f"AttributionResult ({self.method}): {', '.join(self.values)}"

    def describe(self, component: str, index: tuple[int, ...]) -> str:
        """``"L12 H3 pos 5"``-style label of a grid index."""
        parts = [f"L{self.layers[index[0]]}"]
        units = self.units.get(component)
        rest = index[1:]
        if units is not None:
            kind = "N" if self.meta.get("neurons", {}).get(component) else "H"
            parts.append(f"{kind}{units[rest[0]]}")
            rest = rest[1:]
        if rest and self.positions is not None:
            pos = self.positions[rest[0]]
            tok = f" {self.tokens[pos]!r}" if self.tokens else ""
            parts.append(f"pos {pos}{tok}")
        return " ".join(parts)


def attribution_patching(
    model: nn.Module,
    base: Any,
    source: Any,
    metric: Callable[[torch.Tensor], torch.Tensor] | int,
    components: str | Sequence[str] = "block_output",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    *,
    per_position: bool | None = None,
    neurons: Sequence[str] | bool = ("mlp_activation",),
    method: str = "atp",
    qk_fix: bool | None = None,
    grad_drop: bool | None = None,
    verify: int | str | None = None,
    top_k: int = 10,
    memory_budget: int = 1 << 30,
    progress: bool = True,
) -> AttributionResult:
    """Estimate every cell's patching effect by attribution patching; optionally verify.

    ``base`` / ``source``, ``metric``, ``components``, ``layers``, ``positions``, ``heads``
    and ``per_position`` as in :func:`patching_sweep` (equal-length pairs; a cell's effect is
    averaged over the base examples). ``neurons``: components attributed per column (each
    neuron a cell; default ``mlp_activation``), or True / False for all / none. Default
    ``per_position``: True for whole components, False for heads and neurons.
    ``method``: "atp" or "atp*" (``qk_fix`` and ``grad_drop`` default to True under "atp*"
    and can be set separately). ``verify``: K (exact top-K per component) or "grid".
    ``memory_budget``: bytes of the site tensors one pass keeps (activations, gradients,
    products): layers are split into chunks that fit, one forward + backward per chunk; it
    also sizes GradDrop's batched backward. ``progress``: a tqdm bar, one tick per pass,
    per GradDrop layer and per QK-fix layer (then the verification's own bar).
    """
    if method not in METHODS:
        raise ConfigError(choices_message("attribution method", method, METHODS))
    metric = as_metric(metric)
    comps = [components] if isinstance(components, str) else list(components)
    base, source = as_inputs(base), as_inputs(source)
    n_layers, seq = num_layers(model), _seq_len(base, source)
    layers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    run = _Run(
        model, base, source, metric, comps,
        pos=list(range(seq)) if positions is None else sorted({int(p) % seq for p in positions}),
        per_position=per_position, heads=heads,
        neuron_of={c: (neurons if isinstance(neurons, bool) else c in neurons) for c in comps},
        use_qk=False, grad_drop=method == "atp*" if grad_drop is None else bool(grad_drop),
        n_layers=n_layers, seq=seq, budget=memory_budget,
    )  # fmt: skip
    started = time.perf_counter()
    qk_fix = method == "atp*" if qk_fix is None else bool(qk_fix)
    plan = run.plan(layers, qk_fix)
    chunks = _layer_chunks(plan, layers, seq, base, source, memory_budget)
    # a tick per grad pass, per dropped layer of each pass, per QK-fix layer
    per_chunk = 1 + (n_layers if run.grad_drop else 0)
    run.bar = _bar(progress, len(chunks) * per_chunk + (len(layers) if run.use_qk else 0))
    grids: dict[str, dict[int, torch.Tensor]] = {c: {} for c in comps}
    for chunk in chunks:
        for (c, ly), v in run.chunk({k: v for k, v in plan.items() if k[1] in chunk}, chunk):
            grids[c][ly] = v
    if run.bar is not None:
        run.bar.close()
    values = {c: torch.stack([grids[c][ly] for ly in layers]) for c in comps}
    units_of = run.units_of
    head_list = next((u for c, u in units_of.items() if u is not None and not run.neuron_of[c]),
                     None)  # fmt: skip
    result = AttributionResult(
        values, layers, run.pos, head_list, run.base_value, run.source_value, method=method,
        units={c: units_of.get(c) for c in comps},
        meta={"metric": getattr(metric, "__name__", "metric"), "qk_fix": run.use_qk,
              "grad_drop": run.grad_drop, "neurons": run.neuron_of,
              "seconds": time.perf_counter() - started},
    )  # fmt: skip
    if verify is not None:
        verify_result(result, model, base, source, metric, verify, top_k=top_k,
                      progress=progress)  # fmt: skip
    return result


def _seq_len(base: dict[str, Any], source: dict[str, Any]) -> int:
    seq = next(iter(base.values())).shape[1]
    if next(iter(source.values())).shape[1] != seq:
        raise ValueError("base and source must have the same number of tokens")
    return int(seq)


@dataclass
class _Run:
    """The settings of one :func:`attribution_patching` call and the passes of its layer
    chunks (:meth:`chunk`), which fill ``units_of``, ``base_value`` and ``source_value``."""

    model: nn.Module
    base: dict[str, Any]
    source: dict[str, Any]
    metric: Callable[[torch.Tensor], torch.Tensor]
    comps: list[str]
    pos: list[int]
    per_position: bool | None
    heads: Sequence[int] | None
    neuron_of: dict[str, bool]
    use_qk: bool
    grad_drop: bool
    n_layers: int
    seq: int
    budget: int
    bar: Any = None
    units_of: dict[str, list[int] | None] = field(default_factory=dict)
    base_value: float = 0.0
    source_value: float = 0.0

    def plan(self, layers: list[int], qk_fix: bool) -> dict[tuple[str, int], Any]:
        """(component, layer) -> site; checks ``heads``; adds the attention outputs the QK
        fix needs (and sets ``use_qk``)."""
        plan = {(c, ly): resolve_site(self.model, ly, c) for c in self.comps for ly in layers}
        for c in self.comps:
            n_heads = plan[(c, layers[0])].heads
            bad = [h for h in self.heads or () if n_heads is not None and not 0 <= int(h) < n_heads]
            if bad:
                raise ConfigError(f"heads {bad} out of range for {c!r}: it has {n_heads} heads "
                                  f"(0..{n_heads - 1})")  # fmt: skip
        self.use_qk = qk_fix and any(kind_of(c) for c in self.comps)
        if self.use_qk:
            for ly in layers:
                plan[(Z, ly)] = resolve_site(self.model, ly, Z)
        return plan

    def chunk(self, sites: dict[tuple[str, int], Any], chunk: list[int]):
        """The passes of one layer chunk: ((component, layer), CPU grid) pairs."""
        model = self.model
        hooks = {(s.module_path, str(s.hook)): s for s in sites.values()}
        attn = None
        if self.use_qk:
            attn = {ly: resolve_site(model, ly, "attention_input").module for ly in chunk}
        # the source rows ride in the base forward when the inputs batch together, except
        # under GradDrop: its L-variant backward would then run over the source rows too
        drop = self.n_layers if self.grad_drop else None
        gp = grad_pass(model, self.base, self.metric, hooks,
                       source=None if self.grad_drop else self.source,
                       attention_calls=attn, drop_layers=drop)  # fmt: skip
        src, src_rows = gp.src, gp.src_rows
        if src is None:
            src, src_logits = collect(model, self.source, hooks)
            src_rows = self.metric(src_logits).float()
        self.base_value = float(gp.rows.mean())
        self.source_value = float(src_rows.mean())
        blocks = {ly: block_module(model, ly) for ly in chunk}
        widths = {k: token_major_width(*k, src[(s.module_path, str(s.hook))].shape)
                  for k, s in sites.items()}  # fmt: skip
        infos = {
            k: site_info(model, k[0], k[1], widths[k], site=s, block=blocks[k[1]])
            for k, s in sites.items()
        }
        _tick(self.bar)
        deltas = self._deltas(chunk, infos, attn, gp, src) if self.use_qk else {}
        est = ChunkEstimator(infos, src, gp, deltas, self.neuron_of, self.per_position,
                             self.heads, self.pos, self.use_qk)  # fmt: skip
        comps = self.comps
        plain = {
            (c, ly): v for c in comps for ly, v in est.estimate_layers(c, chunk, gp.grads).items()
        }
        if self.grad_drop:
            rows = len(gp.rows) + (len(src_rows) if gp.src is not None else 0)
            group = _drop_group(model, self.n_layers, rows, self.seq, self.budget)
            plain = graddrop(plain, est, self.n_layers, lambda: _tick(self.bar), group)
        self.units_of.update(est.units_of)
        return [(k, v.detach().float().cpu()) for k, v in plain.items()]

    def _deltas(self, chunk, infos, attn, gp, src) -> dict[int, Any]:
        """The QK fix's attention-output changes of every layer in ``chunk``."""
        deltas = {}
        for ly in chunk:
            qs = [infos[(c, ly)] for c in self.comps if kind_of(c) == "query"]
            ks = [infos[(c, ly)] for c in self.comps if kind_of(c) == "key"]
            modes = {per_pos_of(self.per_position, k, self.neuron_of[k.component]) for k in ks}
            deltas[ly] = attention_deltas(
                attn[ly], gp.calls[ly], infos[(Z, ly)], qs[0] if qs else None,
                ks[0] if ks else None, src, self.pos, per_key=True in modes,
                all_keys=False in modes,
            )  # fmt: skip
            _tick(self.bar)
        return deltas


def _layer_chunks(plan, layers, seq, base, source, budget) -> list[list[int]]:
    """Layers grouped so that one pass's site tensors stay under ``budget`` bytes (float32):
    per site, the joined pass's activations and gradients (base + source rows) and the
    estimate's stacked difference, gradient and product (base rows)."""
    batch = next(iter(base.values())).shape[0]
    rows = 2 * (batch + next(iter(source.values())).shape[0]) + 3 * batch
    per_layer: dict[int, int] = {}
    for (_, ly), site in plan.items():
        width = (site.dim or 1) * (site.heads or 1)
        per_layer[ly] = per_layer.get(ly, 0) + 4 * rows * seq * width
    chunks: list[list[int]] = [[]]
    used = 0
    for ly in layers:
        if chunks[-1] and used + per_layer[ly] > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(ly)
        used += per_layer[ly]
    return chunks


def _drop_group(model, n_layers: int, batch: int, seq: int, budget: int) -> int:
    """GradDrop layers per batched backward: each keeps about one forward's activations
    (~64 bytes per hidden unit, token and layer, ``batch`` rows) alive during the backward."""
    width = resolve_site(model, 0, "block_output").dim or 1
    per_variant = 64 * n_layers * batch * seq * width
    return max(1, min(n_layers, budget // max(1, per_variant)))


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="attribution", leave=False, dynamic_ncols=True)


def _tick(bar) -> None:
    if bar is not None:
        bar.update(1)


def verify_result(
    result: AttributionResult,
    model: nn.Module,
    base: Any,
    source: Any,
    metric: Callable[[torch.Tensor], torch.Tensor] | int,
    verify: int | str,
    *,
    top_k: int = 10,
    progress: bool = False,
) -> AttributionResult:
    """Fill ``result.exact`` and ``result.verification``: the exact effect of the ``verify``
    cells with the largest ``|estimate|`` per component, or of every cell (``"grid"``)."""
    metric = as_metric(metric)
    base, source = as_inputs(base), as_inputs(source)
    grid_mode = verify == "grid"
    if not grid_mode and (not isinstance(verify, int) or verify < 1):
        raise ConfigError(f"verify must be a positive number of cells or 'grid' (got {verify!r})")
    specs: list[CellSpec] = []
    where: list[tuple[str, tuple[int, ...]]] = []
    for comp, grid in result.values.items():
        flat = grid.flatten()
        n = flat.numel() if grid_mode else min(int(verify), flat.numel())
        order = flat.abs().topk(n).indices.tolist()
        neuron = bool(result.meta.get("neurons", {}).get(comp))
        units = result.units.get(comp)
        for i in order:
            idx = tuple(int(x) for x in torch.unravel_index(torch.tensor(i), grid.shape))
            rest = idx[1:]
            unit = None
            if units is not None:
                unit, rest = units[rest[0]], rest[1:]
            positions = (result.positions[rest[0]],) if rest else tuple(result.positions)
            specs.append(CellSpec(comp, result.layers[idx[0]], unit, positions, neuron))
            where.append((comp, idx))
    exact = exact_effects(model, base, source, metric, specs, progress=progress)
    for comp, grid in result.values.items():
        result.exact[comp] = torch.full_like(grid, float("nan"))
    for (comp, idx), value in zip(where, exact):
        result.exact[comp][idx] = value
    for comp, grid in result.values.items():
        cells = [idx for c, idx in where if c == comp]
        est = torch.stack([grid[i] for i in cells]) if cells else torch.empty(0)
        ex = torch.stack([result.exact[comp][i] for i in cells]) if cells else torch.empty(0)
        result.verification[comp] = verification(comp, cells, est, ex, grid_mode, top_k)
    return result
