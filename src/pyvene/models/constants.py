"""Hook-type constants and last-dim split helpers of the original ``pyvene.models.constants``
(SPEC B §1.2), used in ``pv.type_to_module_mapping`` entries.

A hook type is literally the name of the ``nn.Module`` method that registers the hook. A split
is a pair ``(split_fn, param)`` applied to the hooked tensor: ``split_three`` / ``split_half``
select one of 3 / 2 equal parts of the last dim (Q=0, K=1, V=2 of a fused projection),
``split_head_and_permute`` splits ``(B, S, H*Dh)`` into ``(B, H, S, Dh)``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..families.base import Interleaved
from ..gather import part_view

CONST_INPUT_HOOK = "register_forward_pre_hook"
CONST_OUTPUT_HOOK = "register_forward_hook"
CONST_GRAD_HOOK = "register_hook"

# Which third of a fused QKV output a component reads (the original's table).
CONST_QKV_INDICES = {
    "query_output": 0,
    "key_output": 1,
    "value_output": 2,
    "head_query_output": 0,
    "head_key_output": 1,
    "head_value_output": 2,
    "reset_x2h_output": 0,
    "update_x2h_output": 1,
    "new_x2h_output": 2,
    "reset_h2h_output": 0,
    "update_h2h_output": 1,
    "new_h2h_output": 2,
}


def split_and_select(tensor: torch.Tensor, n: int, i: int) -> torch.Tensor:
    """Part ``i`` of ``n`` equal chunks of the last dim."""
    width = tensor.shape[-1]
    if width % n:
        raise ValueError(f"last dim {width} does not split into {n} equal parts")
    if not 0 <= i < n:
        raise ValueError(f"part index {i} is out of range for {n} parts (0..{n - 1})")
    return tensor.chunk(n, dim=-1)[i]


def split_three(tensor: torch.Tensor, i: int) -> torch.Tensor:
    """Third ``i`` of the last dim (Q=0, K=1, V=2 of a fused QKV projection)."""
    return split_and_select(tensor, 3, i)


def split_half(tensor: torch.Tensor, i: int) -> torch.Tensor:
    """Half ``i`` of the last dim."""
    return split_and_select(tensor, 2, i)


def split_part(tensor: torch.Tensor, bounds: Any) -> torch.Tensor:
    """The ``[start, end)`` slice of the last dim (unequal fused parts), or an interleaved
    part (``groups``, ``parts``, ``index``: GPT-NeoX's per-head Q/K/V) flattened to
    ``(..., groups * width)``. Our addition, used by the generated registry entries; the
    maths is :func:`pyvene.gather.part_view`."""
    part = bounds if isinstance(bounds, Interleaved) else tuple(bounds)
    view = part_view(tensor, part)
    return view.flatten(-2) if isinstance(part, Interleaved) else view


def split_heads(tensor: torch.Tensor, num_heads: int, head_dim: int) -> torch.Tensor:
    """``(B, S, H*Dh)`` -> ``(B, H, S, Dh)``."""
    if tensor.shape[-1] != num_heads * head_dim:
        raise ValueError(
            f"last dim {tensor.shape[-1]} is not num_heads * head_dim = {num_heads} * {head_dim}"
        )
    return tensor.view(*tensor.shape[:-1], num_heads, head_dim).permute(0, 2, 1, 3)


def split_head_and_permute(tensor: torch.Tensor, num_heads: int) -> torch.Tensor:
    """:func:`split_heads` with ``head_dim = last dim // num_heads``."""
    return split_heads(tensor, num_heads, tensor.shape[-1] // num_heads)


__all__ = [
    "CONST_GRAD_HOOK",
    "CONST_INPUT_HOOK",
    "CONST_OUTPUT_HOOK",
    "CONST_QKV_INDICES",
    "split_and_select",
    "split_half",
    "split_head_and_permute",
    "split_heads",
    "split_part",
    "split_three",
]
