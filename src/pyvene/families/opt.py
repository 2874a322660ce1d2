"""OPT: decoder layers under ``decoder.layers``; the MLP is inline in the layer (fc1 ->
activation_fn -> fc2), so ``mlp_input`` is fc1's input and ``mlp_output`` fc2's output."""

from __future__ import annotations

from .base import Component, Family, attr, head_dim, num_heads

_d = attr("hidden_size")
_L = "decoder.layers.{layer}"


def _proj(name: str, heads: bool = False) -> Component:
    return Component(
        f"{_L}.self_attn.{name}",
        "output",
        head_dim if heads else _d,
        heads=num_heads if heads else None,
    )


OPT = Family(
    name="opt",
    model_types=("opt",),
    num_layers=attr("num_hidden_layers"),
    layers_path="decoder.layers",
    components={
        "block_input": Component(_L, "input", _d),
        "block_output": Component(_L, "output", _d),
        "mlp_input": Component(f"{_L}.fc1", "input", _d),
        "mlp_activation": Component(f"{_L}.activation_fn", "output", attr("ffn_dim")),
        "mlp_output": Component(f"{_L}.fc2", "output", _d),
        "attention_value_output": Component(f"{_L}.self_attn.out_proj", "input", _d),
        "head_attention_value_output": Component(
            f"{_L}.self_attn.out_proj", "input", head_dim, heads=num_heads
        ),
        "attention_output": Component(f"{_L}.self_attn", "output", _d),
        "attention_input": Component(f"{_L}.self_attn", "input", _d),
        "query_output": _proj("q_proj"),
        "key_output": _proj("k_proj"),
        "value_output": _proj("v_proj"),
        "head_query_output": _proj("q_proj", True),
        "head_key_output": _proj("k_proj", True),
        "head_value_output": _proj("v_proj", True),
    },
)
