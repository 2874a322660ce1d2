"""The swap primitive: interchange / add / subtract / collect a source into a base on chosen
feature dims (out of place), and the helpers that turn per-call ``subspaces`` and a
``subspace_partition`` into per-example dims and masks. Pure tensor functions, no state."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, DimensionMismatchError, LocationError, choices_message


def expand_partition(partition: Any) -> list[list[int]] | None:
    """[[0, 2], [2, 4]] -> [[0, 1], [2, 3]]; explicit index lists are kept.
    As in the original, a 2-element int list is read as a [start, end) range."""
    if partition is None:
        return None
    out = []
    for part in partition:
        part = list(part)
        if len(part) == 2 and all(isinstance(p, int) for p in part):
            out.append(list(range(part[0], part[1])))
        else:
            out.append([int(p) for p in part])
    return out


def broadcast_source(source: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Broadcast a source (e.g. a (D,) vector) to the base slice's shape, or raise."""
    source = source.to(device=base.device, dtype=base.dtype)
    if source.shape == base.shape:
        return source
    try:
        return torch.broadcast_to(source, base.shape)
    except RuntimeError:
        pass
    try:
        return source.reshape([1] * (base.dim() - 1) + [base.shape[-1]]).expand(base.shape)
    except RuntimeError as err:
        hint = ""
        if source.dim() == base.dim() >= 2 and source.shape[0] not in (1, base.shape[0]):
            hint = (
                f"; the source run has {source.shape[0]} examples and the base "
                f"{base.shape[0]}: give sources with the base's batch size (or 1)"
            )
        elif source.dim() == base.dim() >= 3 and source.shape[-1] == base.shape[-1]:
            hint = (
                "; without unit_locations the whole tensor is swapped, so source and base "
                "inputs need the same length: pick positions with unit_locations="
                "{'sources->base': (source_positions, base_positions)} otherwise"
            )
        raise DimensionMismatchError(
            f"source with shape {tuple(source.shape)} cannot be broadcasted into base with shape "
            f"{tuple(base.shape)}; a source must match the base slice or be a "
            f"({base.shape[-1]},) vector{hint}"
        ) from err


def subspace_dims(
    subspaces: Any, partition: list[list[int]] | None, batch: int, use_fast: bool = False
) -> list[list[int]] | None:
    """Per-example lists of feature dims from per-call ``subspaces`` (partition indices when a
    partition is set, raw dims otherwise). A single list applies to every example; with
    ``use_fast`` (the original's fast path) the first example's list applies to every example
    and the other entries are ignored."""
    if subspaces is None:
        return None
    if isinstance(subspaces, torch.Tensor):
        subspaces = subspaces.tolist()
    if _is_int(subspaces):
        subspaces = [[subspaces]]
    elif isinstance(subspaces, (list, tuple)) and subspaces and all(map(_is_int, subspaces)):
        subspaces = [list(subspaces)]
    if not isinstance(subspaces, (list, tuple)) or not all(
        _is_int(s) or (isinstance(s, (list, tuple)) and all(map(_is_int, s))) for s in subspaces
    ):
        raise LocationError(
            f"subspaces entry {subspaces!r} is not a list of ints per example; give e.g. "
            "[[0, 1]] (dims 0 and 1 of every example) or one list per example"
        )
    rows = [list(s) if isinstance(s, (list, tuple)) else [int(s)] for s in subspaces]
    if use_fast:
        rows = rows[:1]
    if len(rows) == 1 and batch != 1:
        rows = rows * batch
    if len(rows) != batch:
        raise LocationError(
            f"subspaces has {len(rows)} per-example entries for a batch of {batch}; give one "
            "list for all examples or one per example"
        )
    if partition is not None:
        bad = [p for row in rows for p in row if not -len(partition) <= p < len(partition)]
        if bad:
            raise LocationError(
                f"subspaces index {bad[0]} is out of range: with subspace_partition set, "
                f"subspaces pick partition parts, and it has {len(partition)} "
                f"(0..{len(partition) - 1}): {partition}"
            )
        rows = [[d for p in row for d in partition[p]] for row in rows]
    return rows


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_dims(dims: list[list[int]], width: int) -> None:
    """Raise :class:`LocationError` naming the first dim outside ``-width..width-1``."""
    bad = [d for row in dims for d in row if not -width <= d < width]
    if bad:
        raise LocationError(
            f"subspaces dim {bad[0]} is out of range for width {width} (valid 0..{width - 1}); "
            "subspaces index the features of the intervened vector"
        )


def dims_mask(dims: list[list[int]], base: torch.Tensor) -> torch.Tensor:
    """Boolean mask broadcastable to ``base`` with True at each example's dims."""
    batch, width = base.shape[0], base.shape[-1]
    check_dims(dims, width)
    mask = torch.zeros(batch, width, dtype=torch.bool, device=base.device)
    for_rows = [(b, d) for b, row in enumerate(dims) for d in row]
    if for_rows:
        idx = torch.tensor(for_rows, device=base.device)
        mask[idx[:, 0], idx[:, 1]] = True
    return mask.view(batch, *([1] * (base.dim() - 2)), width)


def do_intervention_by_swap(
    base: torch.Tensor,
    source: torch.Tensor | None,
    mode: str = "interchange",
    interchange_dim: Any = None,
    subspaces: Any = None,
    subspace_partition: Any = None,
    use_fast: bool = False,
) -> torch.Tensor:
    """Interchange / add / subtract the source into the base on chosen dims (out of place), or
    return the chosen dims ('collect'). Dims: per-example ``subspaces`` if given, else the
    first ``interchange_dim`` features, else all. ``subspace_partition`` is the raw form
    (``[[0, 2], [2, 4]]`` ranges or explicit index lists). The original exports it as
    ``_do_intervention_by_swap``, the name kept in ``pyvene`` and ``pyvene.interventions``."""
    return swap(
        base,
        source,
        mode,
        interchange_dim,
        subspaces,
        expand_partition(subspace_partition),
        use_fast,
    )


def swap(
    base: torch.Tensor,
    source: torch.Tensor | None,
    mode: str,
    interchange_dim: Any,
    subspaces: Any,
    partition: list[list[int]] | None,
    use_fast: bool = False,
) -> torch.Tensor:
    """:func:`do_intervention_by_swap` with an already expanded partition."""
    modes = ("interchange", "add", "subtract", "collect")
    if mode not in modes:
        raise ConfigError(choices_message("swap mode", mode, modes))
    if mode == "collect":
        if source is not None:
            raise ConfigError("collect mode takes no source")
    elif source is None:
        raise ConfigError(f"{mode} needs a source; got None")
    else:
        source = broadcast_source(source, base)
    dims = subspace_dims(subspaces, partition, base.shape[0], use_fast)
    if mode == "collect":
        return _collect(base, dims, interchange_dim)
    mask = _swap_mask(base, dims, interchange_dim)
    if mode == "interchange":
        return source if mask is None else torch.where(mask, source, base)
    delta = source if mode == "add" else -source
    return base + (delta if mask is None else delta * mask)


def _collect(
    base: torch.Tensor, dims: list[list[int]] | None, interchange_dim: Any
) -> torch.Tensor:
    """The chosen dims of ``base`` (``[..., len(dims[b])]``): per-example dims gather row by row;
    without dims, the first ``interchange_dim`` features (all when None)."""
    if dims is None:
        return base if interchange_dim is None else base[..., : _as_int(interchange_dim)]
    check_dims(dims, base.shape[-1])
    dims = [[d % base.shape[-1] for d in row] for row in dims]  # torch.gather: no negatives
    if any(row != dims[0] for row in dims):
        if len({len(r) for r in dims}) != 1:
            raise DimensionMismatchError("collect with ragged per-example subspaces")
        idx = torch.tensor(dims, device=base.device)
        idx = idx.view(base.shape[0], *([1] * (base.dim() - 2)), -1)
        return torch.gather(base, -1, idx.expand(*base.shape[:-1], idx.shape[-1]))
    return base[..., dims[0]]


def _swap_mask(
    base: torch.Tensor, dims: list[list[int]] | None, interchange_dim: Any
) -> torch.Tensor | None:
    """Boolean mask of the swapped features (broadcastable to ``base``), or None for all of
    them: per-example ``dims`` if given, else the first ``interchange_dim`` features."""
    if dims is not None:
        return dims_mask(dims, base)
    k = base.shape[-1] if interchange_dim is None else _as_int(interchange_dim)
    if k >= base.shape[-1]:
        return None
    mask = torch.zeros(base.shape[-1], dtype=torch.bool, device=base.device)
    mask[:k] = True
    return mask


def _as_int(x: Any) -> int:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return int(x.item())
    if isinstance(x, (list, tuple)):
        raise ConfigError("interchange_dim as a list of dims: pass them as subspaces instead")
    if not _is_int(x) or x < 0:
        raise ConfigError(
            f"interchange_dim {x!r} is not a non-negative int (the number of leading dims to "
            "swap); use set_interchange_dim(k) with an int, or pass subspaces"
        )
    return int(x)
