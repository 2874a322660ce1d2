"""GPT-NeoX / Pythia: ``layers``; the fused ``attention.query_key_value`` output is laid out
per head as (H, 3, Dh) -- Q, K and V of one head are adjacent -- so query / key / value are
:class:`~pyvene.families.base.Interleaved` parts of it (strided views, patched in place),
not slices."""

from __future__ import annotations

from .base import Component, Family, StackSpec, attr, head_dim, interleaved, num_heads

_d = attr("hidden_size")
_QKV = "layers.{layer}.attention.query_key_value"


def _mlp_width(config) -> int:
    return config.intermediate_size or 4 * config.hidden_size


def _qkv(index: int, heads: bool) -> Component:
    name = ("Q", "K", "V")[index]
    return Component(
        _QKV,
        "output",
        dim=head_dim if heads else _d,
        part=interleaved(index, 3, num_heads),
        heads=num_heads if heads else None,
        doc=f"{name} of every head: part {index} of the per-head (H, 3, Dh) fused output"
        + ("" if heads else ", heads concatenated"),
    )


GPT_NEOX = Family(
    name="gpt_neox",
    model_types=("gpt_neox",),
    num_layers=attr("num_hidden_layers"),
    components={
        "block_input": Component("layers.{layer}", "input", _d),
        "block_output": Component("layers.{layer}", "output", _d),
        "mlp_activation": Component("layers.{layer}.mlp.act", "output", _mlp_width),
        "mlp_output": Component("layers.{layer}.mlp", "output", _d),
        "mlp_input": Component("layers.{layer}.mlp", "input", _d),
        "attention_value_output": Component("layers.{layer}.attention.dense", "input", _d),
        "head_attention_value_output": Component(
            "layers.{layer}.attention.dense", "input", head_dim, heads=num_heads
        ),
        "attention_output": Component("layers.{layer}.attention", "output", _d),
        "attention_input": Component("layers.{layer}.attention", "input", _d),
        **{f"{n}_output": _qkv(i, False) for i, n in enumerate(("query", "key", "value"))},
        **{f"head_{n}_output": _qkv(i, True) for i, n in enumerate(("query", "key", "value"))},
    },
    stack=StackSpec(
        "layers", ("final_layer_norm",), rotary="rotary_emb", tail=("attention.dense", "mlp")
    ),
)
