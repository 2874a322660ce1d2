"""User ``unit_locations`` / ``subspaces`` -> per-intervention index tensors, with the
original's broadcasting shorthands and clear errors for everything ambiguous.

Fully specified form: ``{"sources->base": (src, base)}`` where each side has one entry per
intervention (config order), each entry ``None`` (whole tensor) or ``[[units of example 0],
[units of example 1], ...]``; for unit "h.pos" an entry is ``[heads_per_example,
positions_per_example]``. A per-example list of length 1 applies to the whole batch.

Unit "t" (recurrent cells, see :mod:`pyvene.recurrent`) uses the positions' nesting with
timesteps for positions: ``{"sources->base": ([[[t_src]]], [[[t_base]]])}``, the int / pair
shorthands (``{"base": 3}``, ``{"sources->base": (2, 4)}``) and ``None`` = every timestep.
Timesteps must be >= 0: how many steps a forward has is known only once it ran.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import LocationError
from .gather import Units

_NESTING = (
    "expected nesting [intervention][example][unit], e.g. {'sources->base': ([[[3]]], [[[3]]])} "
    "for one intervention at position 3, or [[[3]] * batch_size] per intervention"
)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _flat_ints(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(x) for x in v)


def broadcast(value: Any, base_only: bool, n: int) -> tuple[Any, Any]:
    """Apply the original's shorthands; returns (source side, base side)."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if _is_int(value):
        side = [[[value]]] * n
        return (None if base_only else side), side
    if isinstance(value, (list, tuple)) and len(value) == 2:
        s, b = value
        if (s is None or _is_int(s)) and _is_int(b):
            return (None if s is None else [[[s]]] * n), [[[b]]] * n
        if _is_int(s) and b is None:
            return [[[s]]] * n, None
    if _flat_ints(value):
        side = [[list(value)]] * n
        return (None if base_only else side), side
    if base_only:
        return None, value
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise LocationError(
            f"'sources->base' needs a (source_locations, base_locations) pair, got {value!r}; "
            + _NESTING
        )
    return value[0], value[1]


def _to_units(entry: Any, unit: str, batch: int, what: str) -> Units | None:
    if entry is None:
        return None
    if isinstance(entry, torch.Tensor):
        entry = entry.tolist()
    if "." in unit:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2):
            raise LocationError(
                f"{what}: unit {unit!r} takes [heads_per_example, positions_per_example], "
                f"got {entry!r}; e.g. [[[0, 1]] * B, [[3]] * B] or pv.GET_LOC((head, pos))"
            )
        heads = _index_table(entry[0], batch, what + " (heads)")
        pos = _index_table(entry[1], batch, what + " (positions)")
        return Units(heads[0], pos[0], heads[1], pos[1])
    index, bounds = _index_table(entry, batch, what)
    if unit == "t" and bounds[0] < 0:
        raise LocationError(
            f"{what}: timestep {bounds[0]} is negative; unit 't' takes timesteps counted from "
            "0 (the number of steps is known only after the forward), e.g. [[[0, 2]]]"
        )
    return Units(index, None, bounds)


def _index_table(entry: Any, batch: int, what: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """One location entry (a list of ints per example) as a (B or 1, U) long tensor and
    its (min, max)."""
    if not isinstance(entry, (list, tuple)) or not all(
        isinstance(r, (list, tuple)) and all(_is_int(u) for u in r) for r in entry
    ):
        raise LocationError(
            f"{what}: got {entry!r}; each example needs a list of ints; " + _NESTING
        )
    if len(entry) not in (1, batch):
        raise LocationError(
            f"{what}: locations for {len(entry)} examples but the batch has {batch}; give one "
            "list per example, or a single list for the whole batch"
        )
    lengths = {len(r) for r in entry}
    if len(lengths) != 1 or 0 in lengths:
        raise LocationError(
            f"{what}: every example must select the same (non-zero) number of units, got "
            f"lengths {sorted(lengths)}"
        )
    flat = [u for r in entry for u in r]
    return torch.tensor(entry, dtype=torch.long), (min(flat), max(flat))


def normalize(
    unit_locations: dict | None,
    keys: list[str],
    units: list[str],
    batch: int,
) -> dict[str, tuple[Units | None, Units | None]]:
    """Parallel mode: key -> (source units, base units); None means the whole tensor."""
    n = len(keys)
    if unit_locations is None:
        return {k: (None, None) for k in keys}
    if not isinstance(unit_locations, dict):
        raise LocationError(
            f"unit_locations must be a dict like {{'sources->base': (src, base)}} or "
            f"{{'base': locs}}, got {type(unit_locations).__name__}"
        )
    valid = {"sources->base", "base"}
    bad = [k for k in unit_locations if k not in valid]
    if bad:
        raise LocationError(
            f"unknown unit_locations key {bad[0]!r}; valid keys in parallel mode: "
            "'sources->base', 'base' (serial mode uses 'source_0->source_1', ..., "
            "'source_{G-1}->base')"
        )
    if not unit_locations:
        return {k: (None, None) for k in keys}
    key = list(unit_locations)[-1]
    src, base = broadcast(unit_locations[key], key == "base", n)
    return sides_to_units(src, base, keys, units, batch)


def sides_to_units(
    src: Any, base: Any, keys: list[str], units: list[str], batch: int
) -> dict[str, tuple[Units | None, Units | None]]:
    """Per-intervention lists for both sides -> key -> (source units, base units)."""
    n = len(keys)
    out: dict[str, list] = {k: [None, None] for k in keys}
    for side_index, side in enumerate((src, base)):
        if side is None:
            continue
        name = "source" if side_index == 0 else "base"
        if isinstance(side, torch.Tensor):
            side = side.tolist()
        if not isinstance(side, (list, tuple)) or len(side) != n:
            got = len(side) if isinstance(side, (list, tuple)) else type(side).__name__
            raise LocationError(
                f"{name} locations: got {got} entries for {n} intervention(s) "
                f"({', '.join(keys)}); " + _NESTING
            )
        for i, key in enumerate(keys):
            out[key][side_index] = _to_units(side[i], units[i], batch, f"{name} locations of {key}")
    for key in keys:
        s, b = out[key]
        if s is not None and b is not None and _size(s) != _size(b):
            raise LocationError(
                f"{key}: the source selects {_size(s)} units and the base {_size(b)}; they must "
                "select the same number"
            )
    return {k: (v[0], v[1]) for k, v in out.items()}


def _size(u: Units) -> tuple[int, ...]:
    return (u.count,) if u.pos is None else (u.count, u.pos.shape[1])


def broadcast_subspaces(subspaces: Any, n: int, batch: int) -> list[Any]:
    """int s -> [[[s]] * B] * N; flat list -> [[list] * B] * N; else one entry per
    intervention (None, per-example lists, or any object a custom intervention reads)."""
    if subspaces is None:
        return [None] * n
    if isinstance(subspaces, torch.Tensor):
        subspaces = subspaces.tolist()
    if _is_int(subspaces):
        return [[[subspaces]] * batch] * n
    if _flat_ints(subspaces):
        return [[list(subspaces)] * batch] * n
    if isinstance(subspaces, dict):
        return [subspaces] * n
    if not isinstance(subspaces, (list, tuple)) or len(subspaces) != n:
        got = len(subspaces) if isinstance(subspaces, (list, tuple)) else subspaces
        raise LocationError(
            f"subspaces: got {got!r} entries for {n} intervention(s); give an int, a list of "
            "dims for all, or one entry per intervention like [[[0, 1]] * batch_size]"
        )
    return list(subspaces)


def GET_LOC(loc: tuple[int, int], unit: str = "h.pos", batch_size: int = 1) -> list:
    """Locations of one (head, position) for unit "h.pos", wrapped for one intervention."""
    if unit != "h.pos":
        raise NotImplementedError(f"GET_LOC supports unit 'h.pos' only, got {unit!r}")
    return [[[[loc[0]]] * batch_size, [[loc[1]]] * batch_size]]
