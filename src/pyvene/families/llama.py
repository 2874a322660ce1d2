"""The llama-like family: separate q/k/v/o projections (GQA-aware), gated MLP with ``act_fn``,
decoder layers under ``layers``. Serves llama, mistral, qwen2/3, gemma/2/3-text, olmo/2."""

from __future__ import annotations

from .base import Component, Family, StackSpec, attr, head_dim, num_heads, num_kv_heads

_d = attr("hidden_size")


def _q_width(config) -> int:
    return num_heads(config) * head_dim(config)


def _kv_width(config) -> int:
    return num_kv_heads(config) * head_dim(config)


def _proj(name: str, width, heads=None) -> Component:
    return Component(
        f"layers.{{layer}}.self_attn.{name}",
        "output",
        dim=head_dim if heads else width,
        heads=heads,
    )


LLAMA_COMPONENTS = {
    "block_input": Component("layers.{layer}", "input", _d),
    "block_output": Component("layers.{layer}", "output", _d),
    "mlp_activation": Component(
        "layers.{layer}.mlp.act_fn", "output", attr("intermediate_size"),
        doc="act_fn(gate_proj(x)), before the product with up_proj",
    ),
    "mlp_output": Component("layers.{layer}.mlp", "output", _d),
    "mlp_input": Component("layers.{layer}.mlp", "input", _d),
    "attention_value_output": Component("layers.{layer}.self_attn.o_proj", "input", _q_width),
    "head_attention_value_output": Component(
        "layers.{layer}.self_attn.o_proj", "input", head_dim, heads=num_heads
    ),
    "attention_output": Component("layers.{layer}.self_attn", "output", _d),
    "attention_input": Component("layers.{layer}.self_attn", "input", _d),
    "query_output": _proj("q_proj", _q_width),
    "key_output": _proj("k_proj", _kv_width),
    "value_output": _proj("v_proj", _kv_width),
    "head_query_output": _proj("q_proj", _q_width, heads=num_heads),
    "head_key_output": _proj("k_proj", _kv_width, heads=num_kv_heads),
    "head_value_output": _proj("v_proj", _kv_width, heads=num_kv_heads),
}  # fmt: skip

LLAMA = Family(
    name="llama",
    model_types=(
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "olmo",
        "olmo2",
    ),
    num_layers=attr("num_hidden_layers"),
    components=LLAMA_COMPONENTS,
    stack=StackSpec("layers", ("norm",), rotary="rotary_emb", softcap="final_logit_softcapping"),
)

LLAMA_STACK = LLAMA.stack  # fmt: skip
