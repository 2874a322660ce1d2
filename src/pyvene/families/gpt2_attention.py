"""GPT-2's ``attention_weight``: make ``h[L].attn.attn_dropout`` run while a call hooks it.

Why: under transformers 5, GPT-2's attention goes through ``ALL_ATTENTION_FUNCTIONS`` (eager,
sdpa, flash...), which apply dropout functionally, so the ``attn_dropout`` module (whose
input is the post-softmax probabilities ``(B, heads, Q, K)``, the original pyvene's
``attention_weight``) is never called and a hook on it never fires. Only
``reorder_and_upcast_attn`` under "eager" still calls it.

How: :data:`IMPLEMENTATION` is registered once with transformers' public
``AttentionInterface`` (and the eager mask with ``AttentionMaskInterface``): GPT-2's eager
attention, except that the probabilities go through ``module.attn_dropout`` (identity in
eval, the same dropout in train). While a :class:`~pyvene.hooks.HookSession` hooks an
``attn_dropout`` module of a GPT-2 model (the ``attention_weight`` component or the module
path ``h[L].attn.attn_dropout.input``), the model's ``config._attn_implementation`` is that
name; the previous value is restored when the last such session closes (reference counted,
also when the forward raises). A model whose implementation already calls the module is
left alone.

Caveat: the setting is the model's, not the thread's: a plain call on the same model in
another thread *during* an intervened call runs eager attention maths (its results equal
"eager"; sdpa / flash differ from eager only by float rounding). pyvene's hooks still act
only for the thread that opened the session.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..hooks import prepare_when_hooked

IMPLEMENTATION = "pyvene_eager_attn_dropout"
_LOCK = threading.Lock()
_ACTIVE: dict[int, list[Any]] = {}  # id(config) -> [sessions using it, previous value, config]


def eager_with_dropout_module(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' GPT-2 ``eager_attention_forward``, with ``module.attn_dropout`` called on
    the post-softmax probabilities instead of functional dropout."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1).type(value.dtype)
    drop = getattr(module, "attn_dropout", None)
    if isinstance(drop, nn.Module):
        weights = drop(weights)
    else:
        weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2)
    return output, weights


_REGISTERED: list[bool] = []


def _register() -> None:
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(IMPLEMENTATION, eager_with_dropout_module)
    AttentionMaskInterface.register(IMPLEMENTATION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
    _REGISTERED.append(True)


def _target(config: Any, upcast: bool) -> str | None:
    """The implementation to switch to, None when the current one calls the module."""
    current = getattr(config, "_attn_implementation", None)
    if current == IMPLEMENTATION or (upcast and current in (None, "eager")):
        return None
    return "eager" if upcast else IMPLEMENTATION


@contextmanager
def calling_attn_dropout(configs: tuple[Any, ...], upcast: bool) -> Iterator[None]:
    """While open (in any thread), ``configs`` select an attention that calls
    ``attn_dropout``; the last one to close restores their previous implementation."""
    _register()
    entered: list[int] = []
    try:
        with _LOCK:
            for config in configs:
                entry = _ACTIVE.get(id(config))
                if entry is None:
                    target = _target(config, upcast)
                    previous = config._attn_implementation
                    entry = _ACTIVE[id(config)] = [0, previous, config]
                    if target is not None:
                        config._attn_implementation = target
                entry[0] += 1
                entered.append(id(config))
        yield
    finally:
        with _LOCK:
            for key in entered:
                entry = _ACTIVE[key]
                entry[0] -= 1
                if entry[0] == 0:
                    del _ACTIVE[key]
                    if entry[2]._attn_implementation != entry[1]:
                        entry[2]._attn_implementation = entry[1]


def _gpt2_attention_of(model: nn.Module, module: nn.Module) -> nn.Module | None:
    """The GPT-2 attention module whose ``attn_dropout`` is ``module`` (None: not one)."""
    if not isinstance(module, nn.Dropout):
        return None
    for parent in model.modules():
        if getattr(parent, "attn_dropout", None) is module and hasattr(parent, "c_attn"):
            return parent
    return None


def watch_attn_dropout(model: nn.Module, module: nn.Module) -> bool:
    """If ``module`` is the ``attn_dropout`` of one of ``model``'s GPT-2 attention modules,
    make every session that hooks it switch the attention (see the module docstring)."""
    attention = _gpt2_attention_of(model, module)
    if attention is None:
        return False
    found = [getattr(attention, "config", None), getattr(model, "config", None)]
    base = getattr(model, getattr(model, "base_model_prefix", "") or "_", None)
    found.append(getattr(base, "config", None))
    configs = tuple({id(c): c for c in found if c is not None}.values())
    upcast = bool(getattr(attention, "reorder_and_upcast_attn", False))
    # held by a weak-keyed table: configs never reference modules, so nothing is kept alive
    prepare_when_hooked(module, lambda: calling_attn_dropout(configs, upcast))
    return True


__all__ = [
    "IMPLEMENTATION",
    "calling_attn_dropout",
    "eager_with_dropout_module",
    "watch_attn_dropout",
]
