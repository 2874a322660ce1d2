"""OPT: decoder layers under ``decoder.layers``. The MLP is inline in the layer (fc1 ->
activation_fn -> fc2) and runs on token-flattened (B * S, D) tensors; the mlp_* components
declare ``tokens_from`` (the decoder layer, whose input is (B, S, D)), so their hooks see
(B, S, D) and position units work. A module path to the same modules
(``"decoder.layers.3.fc2.output"``) keeps the raw (B * S, D) tensor."""

from __future__ import annotations

from .base import Component, Family, StackSpec, attr, head_dim, num_heads

_d = attr("hidden_size")
_L = "decoder.layers.{layer}"


def _proj(name: str, heads: bool = False) -> Component:
    return Component(
        f"{_L}.self_attn.{name}",
        "output",
        head_dim if heads else _d,
        heads=num_heads if heads else None,
    )


def _mlp(name: str, hook: str, dim, doc: str) -> Component:
    return Component(f"{_L}.{name}", hook, dim, doc=doc, tokens_from=_L)


OPT = Family(
    name="opt",
    model_types=("opt",),
    num_layers=attr("num_hidden_layers"),
    components={
        "block_input": Component(_L, "input", _d),
        "block_output": Component(_L, "output", _d),
        "mlp_input": _mlp(
            "fc1", "input", _d, "fc1's input (after final_layer_norm when do_layer_norm_before)"
        ),
        "mlp_activation": _mlp("activation_fn", "output", attr("ffn_dim"), "act(fc1(x))"),
        "mlp_output": _mlp("fc2", "output", _d, "fc2's output, before dropout and residual"),
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
    # The MLP runs on token-flattened (B * S, D) tensors inside the layer (no module to cut):
    # the last layer cuts only the attention output to the last position.
    stack=StackSpec(
        "decoder.layers",
        ("decoder.final_layer_norm", "decoder.project_out"),
        tail=("self_attn.out_proj",),
    ),  # fmt: skip
)
