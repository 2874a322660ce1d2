"""OPT: decoder layers under ``decoder.layers``. The MLP is inline in the layer (fc1 ->
activation_fn -> fc2) and runs on token-flattened (B * S, D) tensors, which position units
cannot address yet, so there are no mlp_* components (module paths work without
unit_locations: ``"decoder.layers.3.fc2.output"``)."""

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
    notes=dict.fromkeys(
        ("mlp_input", "mlp_activation", "mlp_output"),
        "OPT's MLP (fc1 -> activation_fn -> fc2) runs on token-flattened (B * S, D) tensors, "
        "which position units cannot address; use block_output, or module paths such as "
        "'decoder.layers.L.fc2.output' without unit_locations",
    ),
    components={
        "block_input": Component(_L, "input", _d),
        "block_output": Component(_L, "output", _d),
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
