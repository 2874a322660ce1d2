"""GPT-NeoX / Pythia: ``layers``, fused ``attention.query_key_value`` laid out per head as
(H, 3 * Dh) -- Q, K and V of one head are adjacent, so they are not contiguous slices of the
fused output and have no query/key/value components here (use module paths for the raw
fused tensor)."""

from __future__ import annotations

from .base import Component, Family, attr, head_dim, num_heads

_d = attr("hidden_size")


def _mlp_width(config) -> int:
    return config.intermediate_size or 4 * config.hidden_size


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
    },
    notes=dict.fromkeys(
        [f"{h}{n}_output" for h in ("", "head_") for n in ("query", "key", "value")],
        "GPT-NeoX's fused query_key_value output is interleaved per head (H, 3 * Dh), so Q, K "
        "and V are not slices of it; the raw fused tensor is 'layers.L.attention."
        "query_key_value.output'",
    ),
)
