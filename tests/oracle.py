"""An independent plain-torch-hook oracle for intervened forwards (used by test_fuzz.py).

It never calls pyvene's location parser, gather/scatter or intervention code: sites come from a
hand-written table, selections are given in their *meaning* (per example lists of units), units
are gathered and scattered with Python loops, and the intervention math is written out here.
``Invalid`` marks inputs that pyvene must refuse with a PyveneError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from conftest import hooked

# component -> (module path, side, column slice of the hooked tensor or None, heads or None)
GPT2_SITES = {
    "block_output": ("transformer.h.{l}", "output", None, None),
    "block_input": ("transformer.h.{l}", "input", None, None),
    "mlp_output": ("transformer.h.{l}.mlp", "output", None, None),
    "mlp_activation": ("transformer.h.{l}.mlp.act", "output", None, None),
    "value_output": ("transformer.h.{l}.attn.c_attn", "output", (48, 72), None),
    "head_attention_value_output": ("transformer.h.{l}.attn.c_proj", "input", None, 4),
    "head_key_output": ("transformer.h.{l}.attn.c_attn", "output", (24, 48), 4),
}
LLAMA_SITES = {
    "block_output": ("model.layers.{l}", "output", None, None),
    "mlp_activation": ("model.layers.{l}.mlp.act_fn", "output", None, None),
    "attention_output": ("model.layers.{l}.self_attn", "output", None, None),
    "head_attention_value_output": ("model.layers.{l}.self_attn.o_proj", "input", None, 4),
    "head_key_output": ("model.layers.{l}.self_attn.k_proj", "output", None, 2),
}


class Invalid(Exception):
    """The input is not valid: pyvene must raise a PyveneError."""


@dataclass
class Op:
    """One intervention in meaning. ``kind``: vanilla / add / sub / zero / collect / lowrank.
    ``unit``: pos, h or h.pos. ``base`` / ``source``: None (whole tensor) or per-example
    selections (pos / h: ``[[u, ...], ...]``; h.pos: ``([[heads]...], [[positions]...])``).
    ``dims``: None or per-example feature dims (latent columns for lowrank). ``weight``: the
    lowrank ``W`` (D * max_units, r), read from the pyvene intervention before the call."""

    component: str
    layer: int
    unit: str
    kind: str
    base: Any = None
    source: Any = None
    dims: list[list[int]] | None = None
    max_units: int = 1
    weight: torch.Tensor | None = None
    collected: list[torch.Tensor] = field(default_factory=list)

    @property
    def needs_source(self) -> bool:
        return self.kind in ("vanilla", "add", "sub", "lowrank")


def _view(x: torch.Tensor, cols, heads) -> torch.Tensor:
    """(B, S, D) or (B, S, H, Dh) view of the hooked tensor (no copy)."""
    if cols is not None:
        x = x[..., cols[0] : cols[1]]
    if heads is not None:
        x = x.unflatten(-1, (heads, x.shape[-1] // heads))
    return x


def _check(index: int, size: int, what: str) -> int:
    if not -size <= index < size:
        raise Invalid(f"{what} {index} out of range for {size}")
    return index


def rows(sel: list, batch: int) -> list:
    """A selection of one list applies to every example; else one list per example."""
    if len(sel) == batch:
        return sel
    if len(sel) == 1:
        return sel * batch
    raise Invalid(f"{len(sel)} per-example lists for a batch of {batch}")


def expand(unit: str, sel: Any, batch: int) -> Any:
    if sel is None:
        return None
    if unit == "h.pos":
        return rows(sel[0], batch), rows(sel[1], batch)
    return rows(sel, batch)


def gather(view: torch.Tensor, unit: str, sel: Any, heads) -> torch.Tensor:
    """Python-loop gather: pos (B, U, D); h (B, U, S, Dh); h.pos (B, Hs, Ps, Dh); None: whole
    tensor, heads first for head components (B, H, S, Dh)."""
    batch, seq = view.shape[0], view.shape[1]
    if sel is None:
        return view.permute(0, 2, 1, 3) if heads is not None else view
    sel = expand(unit, sel, batch)
    if unit == "h.pos":
        hs, ps = sel
        rows = []
        for b in range(batch):
            grid = [[view[b, _check(p, seq, "position"), _check(h, heads, "head")] for p in ps[b]]
                    for h in hs[b]]  # fmt: skip
            rows.append(torch.stack([torch.stack(r) for r in grid]))
        return torch.stack(rows)
    if unit == "h":
        return torch.stack(
            [torch.stack([view[b, :, _check(h, heads, "head")] for h in sel[b]])
             for b in range(batch)]
        )  # fmt: skip
    return torch.stack(
        [torch.stack([view[b, _check(p, seq, "position")] for p in sel[b]]) for b in range(batch)]
    )


def scatter(view: torch.Tensor, unit: str, sel: Any, heads, value: torch.Tensor) -> None:
    """Write ``value`` back into ``view`` in place (the inverse of :func:`gather`)."""
    if sel is None:
        target = value.permute(0, 2, 1, 3) if heads is not None else value
        if target.shape != view.shape:
            raise Invalid(f"whole-tensor value {tuple(value.shape)} vs {tuple(view.shape)}")
        view.copy_(target)
        return
    sel = expand(unit, sel, view.shape[0])
    for b in range(view.shape[0]):
        if unit == "h.pos":
            hs, ps = sel
            for i, h in enumerate(hs[b]):
                for j, p in enumerate(ps[b]):
                    view[b, p, h] = value[b, i, j]
        elif unit == "h":
            for i, h in enumerate(sel[b]):
                view[b, :, h] = value[b, i]
        else:
            for i, p in enumerate(sel[b]):
                view[b, p] = value[b, i]


def _mask(dims: list[list[int]] | None, shape, width: int) -> torch.Tensor:
    """Per-example boolean mask over the last dim, broadcastable to ``shape``."""
    batch = shape[0]
    mask = torch.zeros(batch, width, dtype=torch.bool)
    dims = None if dims is None else rows(dims, batch)
    for b in range(batch):
        for d in dims[b] if dims is not None else range(width):
            mask[b, _check(d, width, "subspace dim")] = True
    return mask.view(batch, *([1] * (len(shape) - 2)), width)


def apply(op: Op, base: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor | None:
    """The intervention on gathered tensors; None for collect (the model is unchanged)."""
    if op.kind == "collect":
        if op.dims is None:
            op.collected.append(base.clone())
        else:
            dims = rows(op.dims, base.shape[0])
            if len({len(d) for d in dims}) != 1:
                raise Invalid("collect with ragged subspaces")
            for row in dims:
                [_check(d, base.shape[-1], "subspace dim") for d in row]
            picked = [base[b][..., dims[b]] for b in range(base.shape[0])]
            op.collected.append(torch.stack(picked))
        return None
    if op.kind == "zero":
        return torch.where(_mask(op.dims, base.shape, base.shape[-1]), 0.0, base)
    if source.shape != base.shape:
        try:
            source = torch.broadcast_to(source, base.shape)
        except RuntimeError:
            raise Invalid(f"source {tuple(source.shape)} vs base {tuple(base.shape)}") from None
    if op.kind == "lowrank":
        return _lowrank(op, base, source)
    mask = _mask(op.dims, base.shape, base.shape[-1])
    if op.kind == "vanilla":
        return torch.where(mask, source, base)
    sign = 1.0 if op.kind == "add" else -1.0
    return base + sign * source * mask


def _lowrank(op: Op, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``b + ((s - b) W * sel) W^T`` on units flattened to one vector (with locations) or per
    position (without); W has ``D * max_units`` rows."""
    w = op.weight
    shape = base.shape
    if op.base is not None:
        base, source = base.reshape(shape[0], -1), source.reshape(shape[0], -1)
    if base.shape[-1] != w.shape[0]:
        raise Invalid(f"lowrank width {w.shape[0]} vs {base.shape[-1]}")
    delta = (source - base) @ w
    delta = delta * _mask(op.dims, delta.shape, w.shape[1])
    return (base + delta @ w.T).reshape(shape)


def run(model, sites: dict, ops: list[Op], base: dict, source: dict | None):
    """Logits of the intervened base run (and each collect op's activations in ``op``)."""
    handles = []
    try:
        sources: list[torch.Tensor | None] = []
        for op in ops:
            if not op.needs_source:
                sources.append(None)
                continue
            path, side, cols, heads = sites[op.component]
            store: list[torch.Tensor] = []
            module = model.get_submodule(path.format(l=op.layer))
            handles.append(hooked(module, side, lambda t, s=store: s.append(t.detach().clone())))
            with torch.no_grad():
                model(**source)
            handles.pop().remove()
            sources.append(gather(_view(store[0], cols, heads), op.unit, op.source, heads))
        for op, src in zip(ops, sources):
            path, side, cols, heads = sites[op.component]
            module = model.get_submodule(path.format(l=op.layer))

            def patch(t, op=op, src=src, cols=cols, heads=heads):
                got = gather(_view(t, cols, heads), op.unit, op.base, heads)
                new = apply(op, got, src)
                if new is None:
                    return None
                out = t.clone()
                scatter(_view(out, cols, heads), op.unit, op.base, heads, new.to(t.dtype))
                return out

            handles.append(hooked(module, side, patch))
        with torch.no_grad():
            return model(**base).logits
    finally:
        for h in handles:
            h.remove()
