"""The passes behind attribution patching: source activations (no grad), one base forward and
backward that yields the metric's gradient at every requested site, and GradDrop's
dropped-layer gradients.

Only activations get gradients: every parameter is held at ``requires_grad=False`` for the
pass (restored afterwards, also when the forward raises) and the first hooked tensor that
does not require grad becomes a leaf that does. Each hook returns a view of its tensor, so
the recorded tensor is exactly the one the rest of the model consumes. Every tensor stays on
its module's device.

GradDrop (Kramar et al. 2024, section 3.1.2): the estimate with the gradient through layer
``l``'s residual-stream contribution zeroed, i.e. ``out_l = in_l + stopgrad(out_l - in_l)``.
That changes gradients only upstream of ``in_l``: there they are the vector-Jacobian product
of ``in_l`` with the (unchanged) gradient at ``out_l``; nodes inside layer ``l`` get zero;
everything downstream keeps the plain gradient. One forward serves all ``L`` variants.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..families import HookSite, resolve_site
from ..hooks import HookSession


@dataclass
class SiteInfo:
    """A resolved site and how its raw last dim splits into cells.

    ``cols``: raw columns of the component inside the hooked tensor (None: all of it);
    ``heads``/``head_dim``: the head split of those columns (None: no heads); ``key``: the
    hooked tensor, shared by components on the same module and side (GPT-2's Q|K|V);
    ``stage``: where the site sits relative to the residual stream, for GradDrop: ``"in"``
    (the layer's input), ``"out"`` (its output) or ``"inner"`` (inside the layer)."""

    component: str
    layer: int
    site: HookSite
    key: tuple[str, str]
    cols: torch.Tensor | None
    heads: int | None
    head_dim: int | None
    stage: str


def site_info(
    model: nn.Module, component: str, layer: int, width: int | None = None, *,
    site: HookSite | None = None, block: Any = ...,
) -> SiteInfo:  # fmt: skip
    """Resolve ``component`` at ``layer`` (family table or module path). ``site`` and
    ``block`` (the layer's module, None for none): already resolved, to skip the lookups."""
    site = resolve_site(model, layer, component) if site is None else site
    part = site.part
    cols = None
    if part is not None:
        if width is None:
            raise ValueError("a fused component needs its raw width")
        idx = torch.arange(width)
        if isinstance(part, tuple):
            cols = idx[part[0] : part[1]]
        else:  # interleaved (groups, parts, width)
            cols = idx.view(part.groups, part.parts, -1)[:, part.index, :].reshape(-1)
    head_dim = None
    if site.heads is not None:
        n = site.dim * site.heads if cols is None else len(cols)
        head_dim = n // site.heads
    stage = "inner"
    if block is ...:
        block = block_module(model, layer)
    if site.module is block:
        stage = "in" if site.hook == "input" else "out"
    return SiteInfo(
        component, layer, site, (site.module_path, str(site.hook)), cols, site.heads, head_dim,
        stage,
    )  # fmt: skip


def block_module(model: nn.Module, layer: int) -> nn.Module | None:
    """The decoder layer module of ``layer`` (None for a model without a block table)."""
    try:
        return resolve_site(model, layer, "block_input").module
    except Exception:  # noqa: BLE001 - a model without a block table: no GradDrop staging
        return None


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Parameters at ``requires_grad=False`` inside the block, restored afterwards by name:
    accelerate's offload hooks replace the parameter objects of a module at every forward
    (loaded, then back on ``meta``), so the objects seen on entry may be gone on exit."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags.get(name, p.requires_grad))


def last_logits(model: nn.Module, inputs: dict[str, Any], **extra: Any) -> torch.Tensor:
    """Logits at the last position ``(rows, vocab)``, computing only those when supported."""
    try:
        out = model(**inputs, logits_to_keep=1, **extra)
    except TypeError:
        out = model(**inputs, **extra)
    return out.logits[:, -1]


def collect(
    model: nn.Module, inputs: dict[str, Any], sites: dict[tuple, HookSite]
) -> tuple[dict[tuple, torch.Tensor], torch.Tensor]:
    """No-grad run: the hooked tensor of every site key, and the last-position logits."""
    store: dict[tuple, torch.Tensor] = {}
    with torch.no_grad(), HookSession() as session:
        for key, site in sites.items():

            def keep(t: torch.Tensor, key: tuple = key) -> None:
                store[key] = t.detach().clone()

            session.on(site.module, site.hook, keep)
        logits = last_logits(model, inputs, use_cache=False)
    return store, logits


@dataclass
class GradPass:
    """The base run's activations and metric gradients per site key; ``calls`` holds the
    attention modules' call arguments (for the QK fix); ``rows``: per-row metric values."""

    acts: dict[tuple, torch.Tensor]
    grads: dict[tuple, torch.Tensor]
    rows: torch.Tensor
    calls: dict[int, tuple[tuple, dict]]
    dropped: Callable[[int, list[tuple]], dict[tuple, torch.Tensor]] | None
    n_layers: int
    dropped_all: Callable[[list[tuple], int], dict[tuple, torch.Tensor]] | None = None
    src: dict[tuple, torch.Tensor] | None = None
    src_rows: torch.Tensor | None = None


def _view(t: torch.Tensor) -> torch.Tensor:
    return t.view_as(t) if t.requires_grad else t.detach().requires_grad_()


def grad_pass(
    model: nn.Module,
    inputs: dict[str, Any],
    metric: Callable[[torch.Tensor], torch.Tensor],
    sites: dict[tuple, HookSite],
    *,
    source: dict[str, Any] | None = None,
    attention_calls: dict[int, nn.Module] | None = None,
    drop_layers: int | None = None,
) -> GradPass:
    """One base forward and backward. ``sites``: key -> site to record. ``attention_calls``:
    layer -> attention module whose call arguments to keep. ``drop_layers``: the number of
    decoder layers, to prepare GradDrop (then :attr:`GradPass.dropped` ``(l, keys)`` returns
    the gradients at ``keys`` with layer ``l``'s contribution dropped; call it before the
    next grad pass, it keeps the graph alive).

    ``source``: inputs run in the same forward, as extra batch rows after the base rows
    (one batched forward is cheaper than two; rows do not interact, and the metric reads
    only the base rows, so the base gradients are those of a base-only pass). Then
    :attr:`GradPass.src` holds their site tensors and ``src_rows`` their metric values;
    both stay None when the inputs cannot be batched together (different keys or shapes)."""
    n_base = next(iter(inputs.values())).shape[0]
    joined = _joined(inputs, source) if source is not None else None
    rec = _Recorder()
    ctx = contextlib.ExitStack()
    ctx.enter_context(torch.enable_grad())
    ctx.enter_context(frozen(model))
    with ctx, HookSession() as session:
        for key, site in sites.items():
            session.on(site.module, site.hook, rec.keeper(rec.store, key))
        for layer, module in (attention_calls or {}).items():
            session.on_pre_forward(module, rec.call_keeper(layer))
        # installed after the sites: on a shared module these tensors are downstream of them
        for layer in range(drop_layers or 0):
            bi = resolve_site(model, layer, "block_input")
            bo = resolve_site(model, layer, "block_output")
            session.on(bi.module, bi.hook, rec.keeper(rec.block_in, layer))
            session.on(bo.module, bo.hook, rec.keeper(rec.block_out, layer))
        logits = last_logits(model, inputs if joined is None else joined, use_cache=False)
        rows = metric(logits[:n_base]).float()
        store = rec.store
        keys = list(store)
        outs = [rec.block_out[k] for k in sorted(rec.block_out)]
        grads = torch.autograd.grad(
            rows.sum(), [store[k] for k in keys] + outs, retain_graph=bool(drop_layers),
            allow_unused=True,
        )  # fmt: skip
    grad_of = {k: _or_zeros(g, store[k])[:n_base] for k, g in zip(keys, grads)}
    out_grads = [_or_zeros(g, o) for o, g in zip(outs, grads[len(keys) :])]
    drop = _Dropped(store, rec.block_in, out_grads, n_base)
    acts = {k: v.detach()[:n_base] for k, v in store.items()}
    gp = GradPass(
        acts, grad_of, rows.detach(), rec.calls, drop.dropped if drop_layers else None,
        drop_layers or 0, drop.dropped_all if drop_layers else None,
    )  # fmt: skip
    if joined is not None:
        total = next(iter(joined.values())).shape[0]
        gp.calls = {ly: _first_rows(c, n_base, total) for ly, c in rec.calls.items()}
        gp.src = {k: v.detach()[n_base:] for k, v in store.items()}
        with torch.no_grad():
            gp.src_rows = metric(logits[n_base:].detach()).float()
    return gp


def _joined(base: dict[str, Any], source: dict[str, Any]) -> dict[str, Any] | None:
    """Base rows then source rows in one batch; None when they cannot be concatenated (keys,
    types, shapes or dtypes differ, or a tensor is not batch-first)."""
    if base.keys() != source.keys():
        return None
    n_base = next(iter(base.values())).shape[0]
    out = {}
    for k, b in base.items():
        s = source[k]
        if not (isinstance(b, torch.Tensor) and isinstance(s, torch.Tensor)):
            return None
        if b.dim() < 2 or b.shape[0] != n_base or b.shape[1:] != s.shape[1:] or b.dtype != s.dtype:
            return None
        out[k] = torch.cat([b, s.to(b.device)])
    return out


def _first_rows(x: Any, n: int, total: int) -> Any:
    """``x`` with every tensor whose first dim is the joined batch ``total`` cut to its
    first ``n`` rows (tuples, lists and dicts recurse)."""
    if isinstance(x, torch.Tensor):
        return x[:n] if x.dim() >= 1 and x.shape[0] == total else x
    if isinstance(x, (tuple, list)):
        return type(x)(_first_rows(v, n, total) for v in x)
    if isinstance(x, dict):
        return {k: _first_rows(v, n, total) for k, v in x.items()}
    return x


def _or_zeros(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


class _Recorder:
    """What the grad pass's hooks record: site tensors (made to require grad), block inputs
    and outputs for GradDrop, and attention call arguments for the QK fix."""

    def __init__(self) -> None:
        self.store: dict[tuple, torch.Tensor] = {}
        self.block_in: dict[int, torch.Tensor] = {}
        self.block_out: dict[int, torch.Tensor] = {}
        self.calls: dict[int, tuple[tuple, dict]] = {}

    @staticmethod
    def keeper(into: dict, key: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        def keep(t: torch.Tensor) -> torch.Tensor:
            into[key] = t = _view(t)
            return t

        return keep

    def call_keeper(self, layer: int) -> Callable[[tuple, dict], None]:
        def keep_call(args: tuple, kwargs: dict) -> None:
            self.calls[layer] = (args, kwargs)

        return keep_call


class _Dropped:
    """GradDrop's gradients from the grad pass's retained graph."""

    def __init__(
        self, store: dict, block_in: dict, out_grads: list[torch.Tensor], n_base: int
    ) -> None:
        self.store, self.block_in, self.out_grads = store, block_in, out_grads
        self.n_base = n_base  # the base rows of a joined pass

    def dropped(self, layer: int, want: list[tuple]) -> dict[tuple, torch.Tensor]:
        """Gradients at ``want`` (keys upstream of layer ``layer``'s input) with the layer's
        residual contribution dropped: the VJP of its input with its output's gradient."""
        if not want:
            return {}
        store = self.store
        with torch.enable_grad():
            got = torch.autograd.grad(
                self.block_in[layer], [store[k] for k in want],
                grad_outputs=self.out_grads[layer], retain_graph=True, allow_unused=True,
            )  # fmt: skip
        return {k: _or_zeros(g, store[k])[: self.n_base] for k, g in zip(want, got)}

    def dropped_all(self, want: list[tuple], group: int) -> dict[tuple, torch.Tensor]:
        """``dropped(l, want)`` for every layer at once, ``(L, *shape)`` per key: one
        backward with the ``L`` output gradients batched (``is_grads_batched``), ``group``
        layers per call; per-layer VJPs where an operation has no batched backward."""
        n = len(self.block_in)
        parts: dict[tuple, list[torch.Tensor]] = {k: [] for k in want}
        for lo in range(0, n, group):
            for k, g in zip(want, self._batched(want, lo, min(n, lo + group))):
                parts[k].append(g)
        return {k: torch.cat(v)[:, : self.n_base] for k, v in parts.items()}

    def _batched(self, want: list[tuple], lo: int, hi: int) -> list[torch.Tensor]:
        store, out_grads = self.store, self.out_grads
        outs = [self.block_in[k] for k in range(lo, hi)]
        grad_outputs = []
        for i, k in enumerate(range(lo, hi)):
            g = out_grads[k].new_zeros((hi - lo, *out_grads[k].shape))
            g[i] = out_grads[k]
            grad_outputs.append(g)
        try:
            with torch.enable_grad():
                got = torch.autograd.grad(
                    outs, [store[k] for k in want], grad_outputs=grad_outputs,
                    retain_graph=True, allow_unused=True, is_grads_batched=True,
                )  # fmt: skip
        except RuntimeError:  # no batching rule for some backward: one VJP per layer
            per = [self.dropped(k, want) for k in range(lo, hi)]
            return [torch.stack([p[k] for p in per]) for k in want]  # already base rows
        return [
            store[k].new_zeros((hi - lo, *store[k].shape)) if g is None else g
            for k, g in zip(want, got)
        ]
