"""Whisper: the plain names are the encoder's layers (as in the original pyvene), the
``decoder.*`` names the decoder's (dims from decoder_attention_heads / decoder_ffn_dim)."""

from __future__ import annotations

from .base import Component, Family, attr

_d = attr("d_model")


def whisper_components(root: str, side: str) -> dict[str, Component]:
    """Component table of one Whisper stack (``side`` "encoder" or "decoder" under ``root``):
    the two stacks share a layout but read their sizes from different config fields."""
    heads = attr(f"{side}_attention_heads")
    ffn = attr(f"{side}_ffn_dim")
    layers = attr(f"{side}_layers")

    def hd(config) -> int:
        return config.d_model // heads(config)

    L = f"{root}.layers.{{layer}}"

    def c(path: str, hook: str, dim, h=None) -> Component:
        return Component(path, hook, dim, heads=h, num_layers=layers)

    return {
        "block_input": c(L, "input", _d),
        "block_output": c(L, "output", _d),
        "mlp_input": c(f"{L}.fc1", "input", _d),
        "mlp_activation": c(f"{L}.activation_fn", "output", ffn),
        "mlp_output": c(f"{L}.fc2", "output", _d),
        "attention_value_output": c(f"{L}.self_attn.out_proj", "input", _d),
        "head_attention_value_output": c(f"{L}.self_attn.out_proj", "input", hd, heads),
        "attention_output": c(f"{L}.self_attn", "output", _d),
        "attention_input": c(f"{L}.self_attn", "input", _d),
        "query_output": c(f"{L}.self_attn.q_proj", "output", _d),
        "key_output": c(f"{L}.self_attn.k_proj", "output", _d),
        "value_output": c(f"{L}.self_attn.v_proj", "output", _d),
        "head_query_output": c(f"{L}.self_attn.q_proj", "output", hd, heads),
        "head_key_output": c(f"{L}.self_attn.k_proj", "output", hd, heads),
        "head_value_output": c(f"{L}.self_attn.v_proj", "output", hd, heads),
    }


WHISPER = Family(
    name="whisper",
    model_types=("whisper",),
    num_layers=attr("encoder_layers"),
    components={
        **whisper_components("encoder", "encoder"),
        **{f"decoder.{k}": v for k, v in whisper_components("decoder", "decoder").items()},
    },
    no_stack="encoder-decoder: decoder layers also attend to the encoder output (sweeps run the whole model)",
)
