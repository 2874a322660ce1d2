"""Run decoder layers ``l..L-1`` from a cached hidden state: the fast sweep path, driven by
each family's :class:`~pyvene.families.base.StackSpec` (declared in its table).

A sweep cell patched at layer ``l`` and positions ``>= t`` leaves every activation at layers
``< l`` and at positions ``< t`` as in the base run. :class:`LayerStack` lets the sweep start
from the base run's hidden state at layer ``l``, compute only the query positions ``t..T-1``,
and attend to the base run's keys/values of positions ``< t`` through :class:`PrefixKV`, a
duck-typed cache. Logits are computed for the last position only.

Placement: layers may run on different devices (``device_map="auto"``; offloading). The
stack asks :func:`pyvene.devices.module_device` where each layer (and the rotary module, the
final norms and the head) runs; the per-call tables (causal mask, rotary embeddings, position
ids, row indices) go through :class:`Placed`, which copies them at most once per device per
call, and each layer gets the copy on its own device. The hidden state moves only where it
crosses from one device to the next.

At the last layer only the last position is needed: :meth:`LayerStack.tail_modules` names
the modules whose input the sweep cuts to that position.

:func:`stack_unavailable` says why a model has no fast path (its family declares none, the
config is unsupported, the prompt is longer than a sliding window); sweeps then run the
whole model.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from .. import devices as placement
from ..errors import ConfigError, DeviceError
from ..families import base_model_of, family_of


def moved(value: Any, device: torch.device | None) -> Any:
    """``value`` (a tensor, or tuples / dicts of them; anything else as is) on ``device``
    (None: where it is). Every copy goes through :func:`pyvene.devices.to_device`."""
    if device is None:
        return value
    if isinstance(value, dict):
        return {k: moved(v, device) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(moved(v, device) for v in value)
    if isinstance(value, torch.Tensor) and value.device != device:
        return placement.to_device(value, device)
    return value


class Placed:
    """Per-call tensors (a tensor, or tuples / dicts of them), copied at most once to each
    device that asks for them (:meth:`on`); the original serves ``None`` (unknown device)."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self._copies: dict[torch.device, Any] = {}

    def on(self, device: torch.device | None) -> Any:
        """The value on ``device`` (copied there on the first request of this call)."""
        if device is None:
            return self.value
        got = self._copies.get(device)
        if got is None:
            got = self._copies[device] = moved(self.value, device)
        return got


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


def _module(base: nn.Module, path: str) -> nn.Module | None:
    try:
        module = base.get_submodule(path)
    except AttributeError:
        return None
    return module if isinstance(module, nn.Module) else None


class LayerStack:
    """Runs one decoder layer at a time for query positions ``q_start..T-1``."""

    def __init__(self, model: nn.Module, spec: Any) -> None:
        base, prefix = base_model_of(model)
        self.model, self.base, self.spec = model, base, spec
        self.layers = base.get_submodule(spec.layers)
        self.norms = [m for m in (_module(base, p) for p in spec.norm) if m is not None]
        self.rotary = _module(base, spec.rotary) if spec.rotary else None
        self.head = model.get_output_embeddings()
        if self.head is None:
            raise ConfigError("a layer stack needs a causal LM head")
        paths = {m: n for n, m in model.named_modules()}
        self.layer_devices = [_device_of(model, layer, paths) for layer in self.layers]
        self.rotary_device = _device_of(model, self.rotary, paths) if self.rotary else None
        self.out_devices = [_device_of(model, m, paths) for m in (*self.norms, self.head)]
        config = model.config
        self.softcap = getattr(config, spec.softcap, None) if spec.softcap else None
        # Gemma 3: one rotary table per layer type, ``rotary(x, position_ids, layer_type)``.
        self.layer_types = None
        if self.rotary is not None:
            rot = inspect.signature(type(self.rotary).forward).parameters
            if "layer_type" in rot:
                self.layer_types = list(config.layer_types)
        # The layer's cache argument: ``cache`` (transformers >= 5.24), ``past_key_values``
        # before, ``layer_past`` (GPT-NeoX).
        params = inspect.signature(type(self.layers[0]).forward).parameters
        names = ("cache", "past_key_values", "layer_past")
        self.cache_arg = next((n for n in names if n in params), "past_key_values")

    @property
    def kind(self) -> str:
        """``"positional"`` (layers called ``(hidden, cache, mask)``) or ``"rotary"`` /
        ``"absolute"`` (called by keyword, with or without rotary position embeddings)."""
        if self.spec.positional:
            return "positional"
        return "rotary" if self.rotary is not None else "absolute"

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def position_embeddings(self, pos: torch.Tensor, dtype: torch.dtype) -> Any:
        """Rotary embeddings of positions ``pos`` ``(rows, q)``: ``(cos, sin)``, a dict per
        layer type (Gemma 3), or None (absolute positions)."""
        if self.rotary is None:
            return None
        pos = moved(pos, self.rotary_device)
        dummy = torch.zeros(*pos.shape, 1, dtype=dtype, device=pos.device)
        if self.layer_types is None:
            return self.rotary(dummy, position_ids=pos)
        return {t: self.rotary(dummy, pos, t) for t in set(self.layer_types)}

    def layer_kwargs(
        self, q_start: int, seq: int, dtype: torch.dtype, device: torch.device
    ) -> dict[str, Any]:
        """Causal mask (queries ``q_start..seq-1`` over keys ``0..seq-1``) and, for rotary
        models, the position embeddings of the query positions (built once; wrap them in
        :class:`Placed` to give each layer its device's copy)."""
        q = torch.arange(q_start, seq, device=device)
        k = torch.arange(seq, device=device)
        mask = torch.zeros(len(q), seq, dtype=dtype, device=device)
        mask = mask.masked_fill(k[None, :] > q[:, None], torch.finfo(dtype).min)[None, None]
        kwargs: dict[str, Any] = {"attention_mask": mask}
        if self.rotary is not None:
            kwargs["position_embeddings"] = self.position_embeddings(q[None], dtype)
            kwargs["position_ids"] = q[None]
        elif not self.spec.positional:
            kwargs["position_ids"] = q[None]
        return kwargs

    def run_layer(
        self, index: int, hidden: torch.Tensor, kv: PrefixKV, kwargs: dict[str, Any]
    ) -> torch.Tensor:
        """Layer ``index`` on ``hidden`` (moved to the layer's device if it is elsewhere);
        ``kv`` and ``kwargs`` must already be there (see :class:`Placed`)."""
        layer = self.layers[index]
        hidden = moved(hidden, self.layer_devices[index])
        if self.spec.positional:
            out = layer(hidden, kv, kwargs["attention_mask"])
        else:
            emb = kwargs.get("position_embeddings")
            if isinstance(emb, dict):
                kwargs = {**kwargs, "position_embeddings": emb[self.layer_types[index]]}
            out = layer(hidden, **{self.cache_arg: kv}, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def tail_modules(self, index: int) -> list[nn.Module]:
        """The modules of layer ``index`` whose first input can be cut to the last position
        when only the last position's output is read: the attention output projection (its
        input is the attention output, computed for all query positions from keys/values of
        all positions) and the MLP. The residual adds then broadcast ``(rows, 1, d)`` over
        the positions; only the last position of the layer's output is meaningful."""
        layer = self.layers[index]
        return [layer.get_submodule(p) for p in self.spec.tail]

    def logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's output at one position, ``(rows, d) -> (rows, V)``."""
        h = last_hidden
        for norm, device in zip(self.norms, self.out_devices):
            h = norm(moved(h, device))
        logits = self.head(moved(h, self.out_devices[-1]))
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def _device_of(model: nn.Module, module: nn.Module, paths: dict) -> torch.device | None:
    """Where ``module`` runs (None: unknown, or its weights span devices and an accelerate
    hook, if any, moves its inputs)."""
    try:
        return placement.module_device(module, placement.ancestors_of(model, paths[module]))
    except DeviceError:
        return None


def stack_unavailable(model: nn.Module, seq_len: int) -> str | None:
    """Why ``model`` cannot use the fast path for prompts of ``seq_len`` tokens (None: it
    can)."""
    family = family_of(model)
    config = getattr(model, "config", None)
    if family is None:
        return "no registered model family"
    if family.stack is None:
        return family.no_stack or f"family {family.name!r} declares no layer stack"
    base, _ = base_model_of(model)
    if base is model or model.get_output_embeddings() is None:
        return "no causal LM head (a base model)"
    if getattr(model, "training", False):
        return "the model is in training mode (dropout)"
    if family.stack.unsupported is not None:
        reason = family.stack.unsupported(config)
        if reason:
            return reason
    if getattr(config, "use_bidirectional_attention", False):
        return "bidirectional attention"
    types = getattr(config, "layer_types", None) or []
    other = sorted({t for t in types if t not in ("full_attention", "sliding_attention")})
    if other:
        return f"layer types {other}"
    window = getattr(config, "sliding_window", None)
    sliding = "sliding_attention" in types or (
        not types and getattr(config, "use_sliding_window", True) is not False
    )
    if window is not None and sliding and seq_len > window and not family.stack.window_inside:
        return f"the prompt ({seq_len} tokens) is longer than the sliding window ({window})"
    return None


def layer_stack(model: nn.Module, seq_len: int) -> LayerStack | None:
    """The adapter for ``model``, or None when it has none (use whole-model runs)."""
    if stack_unavailable(model, seq_len) is not None:
        return None
    return LayerStack(model, family_of(model).stack)


def run_cache(out: Any) -> Any:
    """The key/value cache of a model output (``cache`` in transformers >= 5.24,
    ``past_key_values`` before)."""
    cache = out.get("cache")
    return cache if cache is not None else out.get("past_key_values")


def layer_kv(cache: Any, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The keys and values of ``layer`` in a cache (``layers`` API or the older lists)."""
    if hasattr(cache, "layers"):
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]
