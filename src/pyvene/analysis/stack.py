"""Per-family adapters that run decoder layers ``l..L-1`` from a cached hidden state.

A sweep cell patched at layer ``l`` and positions ``>= t`` leaves every activation at layers
``< l`` and at positions ``< t`` as in the base run. :class:`LayerStack` lets the sweep start
from the base run's hidden state at layer ``l``, compute only the query positions ``t..T-1``,
and attend to the base run's keys/values of positions ``< t`` through :class:`PrefixKV`, a
duck-typed cache. Logits are computed for the last position only.

At the last layer only the last position is needed: :meth:`LayerStack.tail_modules` names
the modules whose input the sweep cuts to that position.

Families with an adapter: GPT-2 (``h[l]`` blocks) and the llama-like models whose decoder
layers take ``position_embeddings`` from ``model.rotary_emb`` (llama, mistral without an
active sliding window, qwen2, qwen3). Anything else returns ``None`` from :func:`layer_stack`
and the sweep falls back to whole-model runs.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..families import base_model_of

LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3")


class PrefixKV:
    """A one-layer stand-in for a HF ``Cache``: ``update`` prepends fixed prefix keys/values
    (``(rows, kv_heads, t, head_dim)``) to the keys/values of the current query positions."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int = 0, *_, **__):
        if self.keys.shape[2] == 0:
            return keys, values
        return torch.cat([self.keys, keys], dim=2), torch.cat([self.values, values], dim=2)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return int(self.keys.shape[2])


class LayerStack:
    """Runs one decoder layer at a time for query positions ``q_start..T-1``."""

    def __init__(self, model: nn.Module, kind: str) -> None:
        base, _ = base_model_of(model)
        self.model, self.base, self.kind = model, base, kind
        if kind == "gpt2":
            self.layers, self.norm = base.h, base.ln_f
        else:
            self.layers, self.norm = base.layers, base.norm
        self.head = model.get_output_embeddings() if model is not base else None
        if self.head is None:
            raise ConfigError("a layer stack needs a causal LM head")
        # transformers >= 5.24 names the layer's cache argument ``cache`` (``past_key_values``
        # before, now deprecated); pass whichever this version's layer declares.
        params = inspect.signature(type(self.layers[0]).forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def layer_kwargs(
        self, q_start: int, seq: int, dtype: torch.dtype, device: torch.device
    ) -> dict[str, Any]:
        """Causal mask (queries ``q_start..seq-1`` over keys ``0..seq-1``) and, for rotary
        models, the position embeddings of the query positions."""
        q = torch.arange(q_start, seq, device=device)
        k = torch.arange(seq, device=device)
        mask = torch.zeros(len(q), seq, dtype=dtype, device=device)
        mask = mask.masked_fill(k[None, :] > q[:, None], torch.finfo(dtype).min)[None, None]
        kwargs: dict[str, Any] = {"attention_mask": mask}
        if self.kind != "gpt2":
            pos = q[None]
            dummy = torch.zeros(1, len(q), 1, dtype=dtype, device=device)
            kwargs["position_embeddings"] = self.base.rotary_emb(dummy, position_ids=pos)
            kwargs["position_ids"] = pos
        return kwargs

    def run_layer(
        self, index: int, hidden: torch.Tensor, kv: PrefixKV, kwargs: dict[str, Any]
    ) -> torch.Tensor:
        layer = self.layers[index]
        if self.kind == "gpt2":
            out = layer(hidden, kv, kwargs["attention_mask"])
        else:
            out = layer(hidden, **{self.cache_arg: kv}, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def tail_modules(self, index: int) -> list[nn.Module]:
        """The modules of layer ``index`` whose first input can be cut to the last position
        when only the last position's output is read: the attention output projection (its
        input is the attention output, computed for all query positions from keys/values of
        all positions) and the MLP. The residual adds then broadcast ``(rows, 1, d)`` over
        the positions; only the last position of the layer's output is meaningful."""
        layer = self.layers[index]
        if self.kind == "gpt2":
            return [layer.attn.c_proj, layer.mlp]
        return [layer.self_attn.o_proj, layer.mlp]

    def logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's output at one position, ``(rows, d) -> (rows, V)``."""
        return self.head(self.norm(last_hidden))


def layer_stack(model: nn.Module, seq_len: int) -> LayerStack | None:
    """The adapter for ``model``, or None when its family has none (use whole-model runs)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    base, _ = base_model_of(model)
    if base is model or model.get_output_embeddings() is None:
        return None
    if getattr(model, "training", False):
        return None
    if model_type == "gpt2":
        if getattr(config, "add_cross_attention", False):
            return None
        if getattr(config, "reorder_and_upcast_attn", False):
            return None
        return LayerStack(model, "gpt2")
    if model_type in LLAMA_LIKE and hasattr(base, "rotary_emb"):
        window = getattr(config, "sliding_window", None)
        if window is not None and getattr(config, "use_sliding_window", True) and seq_len > window:
            return None
        if getattr(config, "layer_types", None) and any(
            t != "full_attention" for t in config.layer_types
        ):
            return None
        return LayerStack(model, model_type)
    return None
