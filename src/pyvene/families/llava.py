"""LLaVA: the plain (llama) names address the language model (``language_model``, dims from
``text_config``); ``vision.*`` names the CLIP vision tower's encoder layers (``vision_tower``,
dims from ``vision_config``)."""

from __future__ import annotations

from .base import Component, Family, attr, head_dim, num_heads, tower
from .llama import LLAMA_COMPONENTS

_d = attr("hidden_size")
_ffn = attr("intermediate_size")


def clip_components(layers: str = "encoder.layers") -> dict[str, Component]:
    """A CLIP / SigLIP-style encoder layer: self_attn (q/k/v/out_proj), mlp (fc1 ->
    activation_fn -> fc2), relative to the vision model."""
    L = f"{layers}.{{layer}}"

    def proj(name: str, heads: bool = False) -> Component:
        return Component(
            f"{L}.self_attn.{name}",
            "output",
            head_dim if heads else _d,
            heads=num_heads if heads else None,
        )

    return {
        "block_input": Component(L, "input", _d),
        "block_output": Component(L, "output", _d),
        "mlp_input": Component(f"{L}.mlp", "input", _d),
        "mlp_activation": Component(f"{L}.mlp.activation_fn", "output", _ffn),
        "mlp_output": Component(f"{L}.mlp", "output", _d),
        "attention_value_output": Component(f"{L}.self_attn.out_proj", "input", _d),
        "head_attention_value_output": Component(
            f"{L}.self_attn.out_proj", "input", head_dim, heads=num_heads
        ),
        "attention_output": Component(f"{L}.self_attn", "output", _d),
        "attention_input": Component(f"{L}.self_attn", "input", _d),
        "query_output": proj("q_proj"),
        "key_output": proj("k_proj"),
        "value_output": proj("v_proj"),
        "head_query_output": proj("q_proj", True),
        "head_key_output": proj("k_proj", True),
        "head_value_output": proj("v_proj", True),
    }


LLAVA = Family(
    name="llava",
    model_types=("llava",),
    num_layers=attr("num_hidden_layers"),
    root=("language_model", "language_model.model"),
    config_path="text_config",
    components={
        **LLAMA_COMPONENTS,
        **tower(clip_components(), "vision_tower", "vision_config", prefix="vision."),
    },
    no_stack="vision-language model: image features are spliced into the text embeddings before the decoder (sweeps run the whole model)",
)
