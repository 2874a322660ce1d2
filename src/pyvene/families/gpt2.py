"""GPT-2: fused c_attn (Q|K|V thirds), Conv1D projections, blocks under ``h``."""

from __future__ import annotations

from .base import Component, Family, StackSpec, attr, head_dim, num_heads, third
from .gpt2_attention import watch_attn_dropout

_d = attr("n_embd")


def _mlp_width(config) -> int:
    return config.n_inner if getattr(config, "n_inner", None) else 4 * config.n_embd


def _qkv(index: int, heads: bool) -> Component:
    return Component(
        "h.{layer}.attn.c_attn",
        "output",
        dim=head_dim if heads else _d,
        part=third(index, _d),
        heads=num_heads if heads else None,
    )


def _gpt2_stack(config) -> str | None:
    """Not with cross-attention layers or reorder_and_upcast_attn."""
    if getattr(config, "add_cross_attention", False):
        return "cross-attention layers (an encoder-decoder setup)"
    if getattr(config, "reorder_and_upcast_attn", False):
        return "reorder_and_upcast_attn"
    return None


_WEIGHT_DOC = (
    "post-softmax attention probabilities (B, heads, Q, K); 'pos' units pick heads (dim 1); "
    "while hooked, attention runs eager maths through attn_dropout (any attn_implementation)"
)

GPT2 = Family(
    name="gpt2",
    model_types=("gpt2",),
    num_layers=attr("n_layer"),
    components={
        "block_input": Component("h.{layer}", "input", _d),
        "block_output": Component("h.{layer}", "output", _d),
        "mlp_activation": Component("h.{layer}.mlp.act", "output", _mlp_width),
        "mlp_output": Component("h.{layer}.mlp", "output", _d),
        "mlp_input": Component("h.{layer}.mlp", "input", _d),
        "attention_value_output": Component("h.{layer}.attn.c_proj", "input", _d),
        "head_attention_value_output": Component(
            "h.{layer}.attn.c_proj", "input", head_dim, heads=num_heads
        ),
        "attention_output": Component("h.{layer}.attn.resid_dropout", "output", _d),
        "attention_input": Component("h.{layer}.attn", "input", _d),
        # (B, heads, Q, K) post-softmax probabilities; "pos" units index dim 1 (heads), as in
        # the original; runs through attn_dropout only while hooked (gpt2_attention.py)
        "attention_weight": Component(
            "h.{layer}.attn.attn_dropout", "input", attr("n_positions"), doc=_WEIGHT_DOC
        ),
        "query_output": _qkv(0, False),
        "key_output": _qkv(1, False),
        "value_output": _qkv(2, False),
        "head_query_output": _qkv(0, True),
        "head_key_output": _qkv(1, True),
        "head_value_output": _qkv(2, True),
    },
    on_site=watch_attn_dropout,
    stack=StackSpec(
        "h", ("ln_f",), positional=True, tail=("attn.c_proj", "mlp"), unsupported=_gpt2_stack
    ),
)
