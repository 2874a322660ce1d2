"""Phi (phi-1/1.5/2) and Phi-3. Phi: separate q/k/v, ``dense`` output projection, parallel
attention + MLP (fc1 -> activation_fn -> fc2). Phi-3: fused ``qkv_proj`` with GQA (Q | K | V
of unequal widths: ``part`` slices) and fused ``gate_up_proj`` (gate | up halves)."""

from __future__ import annotations

from .base import Component, Family, StackSpec, attr, head_dim, num_heads, num_kv_heads, split

_d = attr("hidden_size")
_ffn = attr("intermediate_size")
_L = "layers.{layer}"


def _q_width(config) -> int:
    return num_heads(config) * head_dim(config)


def _kv_width(config) -> int:
    return num_kv_heads(config) * head_dim(config)


def _zero(config) -> int:
    return 0


def _kv_start(config) -> int:
    return _q_width(config) + _kv_width(config)


def _common(o_proj: str) -> dict[str, Component]:
    return {
        "block_input": Component(_L, "input", _d),
        "block_output": Component(_L, "output", _d),
        "mlp_output": Component(f"{_L}.mlp", "output", _d),
        "mlp_input": Component(f"{_L}.mlp", "input", _d),
        "mlp_activation": Component(f"{_L}.mlp.activation_fn", "output", _ffn),
        "attention_value_output": Component(f"{_L}.self_attn.{o_proj}", "input", _q_width),
        "head_attention_value_output": Component(
            f"{_L}.self_attn.{o_proj}", "input", head_dim, heads=num_heads
        ),
        "attention_output": Component(f"{_L}.self_attn", "output", _d),
        "attention_input": Component(f"{_L}.self_attn", "input", _d),
    }


def _proj(name: str, width, heads=None) -> Component:
    return Component(f"{_L}.self_attn.{name}", "output", head_dim if heads else width, heads=heads)


PHI = Family(
    name="phi",
    model_types=("phi",),
    num_layers=attr("num_hidden_layers"),
    components={
        **_common("dense"),
        "query_output": _proj("q_proj", _q_width),
        "key_output": _proj("k_proj", _kv_width),
        "value_output": _proj("v_proj", _kv_width),
        "head_query_output": _proj("q_proj", _q_width, num_heads),
        "head_key_output": _proj("k_proj", _kv_width, num_kv_heads),
        "head_value_output": _proj("v_proj", _kv_width, num_kv_heads),
    },
    stack=StackSpec(
        "layers", ("final_layernorm",), rotary="rotary_emb", tail=("self_attn.dense", "mlp")
    ),
)

_QKV = f"{_L}.self_attn.qkv_proj"
_parts = {
    "query": (split(_zero, _q_width), _q_width, num_heads),
    "key": (split(_q_width, _kv_width), _kv_width, num_kv_heads),
    "value": (split(_kv_start, _kv_width), _kv_width, num_kv_heads),
}

PHI3 = Family(
    name="phi3",
    model_types=("phi3",),
    num_layers=attr("num_hidden_layers"),
    components={
        **_common("o_proj"),
        "mlp_activation": Component(
            f"{_L}.mlp.activation_fn", "output", _ffn, doc="activation of the gate half"
        ),
        "mlp_gate_output": Component(
            f"{_L}.mlp.gate_up_proj", "output", _ffn, part=split(_zero, _ffn)
        ),
        "mlp_up_output": Component(
            f"{_L}.mlp.gate_up_proj", "output", _ffn, part=split(_ffn, _ffn)
        ),
        **{
            f"{name}_output": Component(_QKV, "output", width, part=part)
            for name, (part, width, _) in _parts.items()
        },
        **{
            f"head_{name}_output": Component(_QKV, "output", head_dim, part=part, heads=heads)
            for name, (part, _, heads) in _parts.items()
        },
    },
    stack=StackSpec("layers", ("norm",), rotary="rotary_emb"),
)
