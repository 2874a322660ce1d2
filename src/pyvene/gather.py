"""Pure gather / scatter of units (positions, heads, heads x positions) on a hooked tensor.
No state, no Python loop over batch rows: everything is advanced indexing.

Shapes (B = batch, S = sequence, W = raw width, D = component width, H heads of Dh):
  raw hooked tensor        (B, S, W)    [a 2-D (B, W) tensor is treated as S = 1]
  component view           (B, S, D)    = raw[..., start:end]
                           (B, S, G, C) for an interleaved part (GPT-NeoX's per-head Q/K/V:
                           raw.unflatten(-1, (G, P, C))[..., i, :]); units see D = G * C
  head view                (B, S, H, Dh)
  gathered "pos"           (B, U, D)
  gathered "h"/"pos" heads (B, U, S, Dh)
  gathered "h.pos"         (B, Hs, Ps, Dh)
  no locations             (B, S, D) or (B, H, S, Dh)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import DimensionMismatchError, LocationError
from .families import HookSite
from .families.base import Interleaved


@dataclass
class Units:
    """Normalized locations of one intervention on one side (source or base).

    ``index``: (B or 1, U) long tensor of positions (or heads for head components);
    ``pos``: (B or 1, P) positions for the two-level "h.pos" unit; ``bounds``: (min, max) of
    the python indices for range checks without a device sync.
    """

    index: torch.Tensor
    pos: torch.Tensor | None
    bounds: tuple[int, int]
    pos_bounds: tuple[int, int] | None = None

    @property
    def count(self) -> int:
        return self.index.shape[1]


def part_view(
    x: torch.Tensor, part: tuple[int, int] | Interleaved | None, where: str = ""
) -> torch.Tensor:
    """The fused part of the last dim, as a view (no copy): ``x[..., start:end]`` for a
    ``(start, end)`` slice, the ``(..., G, C)`` strided view of part ``part.index`` of a
    ``(..., G * P * C)`` tensor for an :class:`Interleaved` part, ``x`` itself for None. The
    one home of fused-part maths (QKV / gate-up splits): sweeps take their raw columns from
    it (:func:`part_columns`), ``pyvene.models.constants.split_part`` their slices."""
    if part is None:
        return x
    if isinstance(part, Interleaved):
        groups, parts = part.groups, part.parts
        if x.shape[-1] % (groups * parts):
            raise DimensionMismatchError(
                f"{where}last dim {x.shape[-1]} does not split into {groups} groups x {parts} parts"
            )
        return x.unflatten(-1, (groups, parts, -1))[..., part.index, :]
    start, end = part
    if x.shape[-1] < end:
        raise DimensionMismatchError(
            f"{where}expected a last dim of at least {end}, got {x.shape[-1]}"
        )
    return x[..., start:end]


def part_columns(part: tuple[int, int] | Interleaved | None, width: int) -> torch.Tensor | None:
    """The raw last-dim columns of ``part`` of a ``width``-wide tensor, in unit order
    (None: the whole width)."""
    if part is None:
        return None
    return part_view(torch.arange(width), part).reshape(-1)


def component_view(x: torch.Tensor, site: HookSite) -> torch.Tensor:
    """(B, S, D) or (B, S, H, Dh) view of the raw hooked tensor (no copy); (B, S, G, C) for
    an interleaved part of a non-head component (see :func:`_grouped`)."""
    if x.dim() == 2:
        x = x.unsqueeze(1)
    where = f"{site.component} at {site.module_path}: "
    if isinstance(site.part, Interleaved):
        if site.heads is not None and site.heads != site.part.groups:
            raise DimensionMismatchError(
                f"{where}{site.heads} heads, but the fused output interleaves "
                f"{site.part.groups} groups"
            )
        return part_view(x, site.part, where)
    x = part_view(x, site.part, where)
    if site.heads is not None:
        width = x.shape[-1]
        if width % site.heads:
            raise DimensionMismatchError(
                f"{where}width {width} does not split into {site.heads} heads"
            )
        x = x.unflatten(-1, (site.heads, width // site.heads))
    return x


def _grouped(site: HookSite) -> bool:
    """True when the view's last two dims (G, C) are one unit width D = G * C: an interleaved
    part of a non-head component. Merging them would copy, so gather merges what it returns
    and scatter splits what it writes."""
    return isinstance(site.part, Interleaved) and site.heads is None


def _checked(idx: torch.Tensor, bounds: tuple[int, int], size: int, what: str) -> torch.Tensor:
    low, high = bounds
    if high >= size or low < -size:
        bad = high if high >= size else low
        raise LocationError(f"{what} index {bad} is out of range for size {size}")
    if low < 0:
        idx = idx % size
    return idx


def _batch_index(units: Units, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(rows (B,), index (B, U), pos (B, P) or None)`` on ``device``, expanded to the batch."""
    index = units.index.to(device)
    pos = None if units.pos is None else units.pos.to(device)
    for got in (index, pos):
        if got is not None and got.shape[0] not in (1, batch):
            raise LocationError(
                f"locations for {got.shape[0]} examples, but this run's batch has {batch}; give "
                "one list per example, or a single list for the whole batch"
            )
    index = index.expand(batch, -1)
    if pos is not None:
        pos = pos.expand(batch, -1)
    rows = torch.arange(batch, device=device)
    return rows, index, pos


def gather(x: torch.Tensor, site: HookSite, units: Units | None) -> torch.Tensor:
    """Select the units of the hooked tensor ``x``; returns a new tensor (see module doc)."""
    view = component_view(x, site)
    if units is None:
        if site.is_head:
            return view.permute(0, 2, 1, 3)
        return view.flatten(-2) if _grouped(site) else view
    rows, index, pos = _batch_index(units, view.shape[0], view.device)
    if site.is_head:
        index = _checked(index, units.bounds, view.shape[2], f"{site.component} head")
        if pos is None:  # heads only: (B, U, S, Dh)
            return view[rows[:, None], :, index]
        pos = _checked(pos, units.pos_bounds, view.shape[1], f"{site.component} position")
        return view[rows[:, None, None], pos[:, None, :], index[:, :, None]]
    if pos is not None:
        raise LocationError(f"unit 'h.pos' needs a head component (head_*), not {site.component!r}")
    index = _checked(index, units.bounds, view.shape[1], f"{site.component} position")
    got = view[rows[:, None], index]
    return got.flatten(-2) if _grouped(site) else got


def scatter(
    x: torch.Tensor, site: HookSite, units: Units | None, value: torch.Tensor
) -> torch.Tensor:
    """A copy of ``x`` with ``value`` written at the units (the inverse of :func:`gather`)."""
    out = x.clone()
    view = component_view(out, site)
    value = value.to(view.dtype)
    grouped = _grouped(site)
    # the trailing dims of one unit: (D,), or (Q, K) for a 4-D tensor such as GPT-2's
    # attention_weight, whose units are heads (dim 1)
    width = (view.shape[-2] * view.shape[-1],) if grouped else tuple(view.shape[2:])
    if units is None:
        if site.is_head:
            value = value.permute(0, 2, 1, 3)
            _check_shape(value, view.shape, site)
        else:
            _check_shape(value, (*view.shape[:2], *width), site)
            value = value.unflatten(-1, view.shape[2:]) if grouped else value
        view.copy_(value)
        return out
    rows, index, pos = _batch_index(units, view.shape[0], view.device)
    if site.is_head:
        index = _checked(index, units.bounds, view.shape[2], f"{site.component} head")
        if pos is None:
            target = (rows[:, None], slice(None), index)
            _check_shape(value, (view.shape[0], index.shape[1], view.shape[1], view.shape[3]), site)
        else:
            pos = _checked(pos, units.pos_bounds, view.shape[1], f"{site.component} position")
            target = (rows[:, None, None], pos[:, None, :], index[:, :, None])
            _check_shape(value, (view.shape[0], index.shape[1], pos.shape[1], view.shape[3]), site)
    else:
        index = _checked(index, units.bounds, view.shape[1], f"{site.component} position")
        target = (rows[:, None], index)
        _check_shape(value, (view.shape[0], index.shape[1], *width), site)
        value = value.unflatten(-1, view.shape[2:]) if grouped else value
    view[target] = value
    return out


def _check_shape(value: torch.Tensor, expected, site: HookSite) -> None:
    if tuple(value.shape) != tuple(expected):
        raise DimensionMismatchError(
            f"the value written into {site.component} has shape {tuple(value.shape)}, expected "
            f"{tuple(expected)} (an intervention must return the shape of the base it was given)"
        )


def scatter_flat(
    x: torch.Tensor, index: torch.Tensor, values: torch.Tensor, rows: bool
) -> torch.Tensor:
    """A contiguous copy of ``x`` with ``values`` written at flat ``index``: rows of ``x``
    viewed as ``(N, W)`` when ``rows``, else single elements of ``x`` viewed as ``(N * W,)``.
    The ragged form of :func:`scatter` (sweeps: every batch row its own units), one
    ``index_copy_``."""
    out = x.clone(memory_format=torch.contiguous_format)
    flat = out.view(-1, out.shape[-1]) if rows else out.view(-1)
    flat.index_copy_(0, index, values.to(out.dtype))
    return out
