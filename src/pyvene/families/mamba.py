"""Mamba: no attention and no MLP -- a block is RMSNorm -> mixer (the selective SSM) ->
residual. Components: the block, the mixer's input and output, and the gated SSM output
(the input of ``mixer.out_proj``, width intermediate_size = expand * hidden)."""

from __future__ import annotations

from .base import Component, Family, attr

_d = attr("hidden_size")

MAMBA = Family(
    name="mamba",
    model_types=("mamba",),
    num_layers=attr("num_hidden_layers"),
    notes=dict.fromkeys(
        [
            "attention_input", "attention_output", "attention_value_output",
            "head_attention_value_output", "query_output", "key_output", "value_output",
            "head_query_output", "head_key_output", "head_value_output",
            "mlp_input", "mlp_output", "mlp_activation",
        ],
        "Mamba blocks have no attention and no MLP: the token mixer is the selective SSM "
        "(mixer_input, mixer_output, ssm_output)",
    ),
    components={
        "block_input": Component("layers.{layer}", "input", _d),
        "block_output": Component("layers.{layer}", "output", _d),
        "mixer_input": Component("layers.{layer}.mixer", "input", _d, doc="after the norm"),
        "mixer_output": Component("layers.{layer}.mixer", "output", _d),
        "ssm_output": Component(
            "layers.{layer}.mixer.out_proj", "input", attr("intermediate_size"),
            doc="y * act(z): the gated SSM output before out_proj",
        ),
    },
    no_stack="state-space layers carry a recurrent state, not keys/values to attend to (sweeps run the whole model)",
)  # fmt: skip
