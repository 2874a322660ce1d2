"""BLIP: the plain names address the text tower (``text_encoder`` in BlipForQuestionAnswering /
BlipForImageTextRetrieval, ``text_model`` in BlipModel; dims from ``text_config``), the
``vision.*`` names the vision encoder (``vision_model``, fused ``qkv`` in Q | K | V thirds,
``projection`` output; dims from ``vision_config``). ITM models add ``itm_output``."""

from __future__ import annotations

from .base import Component, Family, attr, head_dim, num_heads, third, tower
from .encoders import bert_components

_d = attr("hidden_size")
_ffn = attr("intermediate_size")
_L = "encoder.layers.{layer}"


def _qkv(index: int, heads: bool) -> Component:
    return Component(
        f"{_L}.self_attn.qkv",
        "output",
        head_dim if heads else _d,
        part=third(index, _d),
        heads=num_heads if heads else None,
    )


BLIP_VISION = {
    "block_input": Component(_L, "input", _d),
    "block_output": Component(_L, "output", _d),
    "mlp_input": Component(f"{_L}.mlp", "input", _d),
    "mlp_activation": Component(f"{_L}.mlp.activation_fn", "output", _ffn),
    "mlp_output": Component(f"{_L}.mlp", "output", _d),
    "attention_value_output": Component(f"{_L}.self_attn.projection", "input", _d),
    "head_attention_value_output": Component(
        f"{_L}.self_attn.projection", "input", head_dim, heads=num_heads
    ),
    "attention_output": Component(f"{_L}.self_attn", "output", _d),
    "attention_input": Component(f"{_L}.self_attn", "input", _d),
    **{f"{n}_output": _qkv(i, False) for i, n in enumerate(("query", "key", "value"))},
    **{f"head_{n}_output": _qkv(i, True) for i, n in enumerate(("query", "key", "value"))},
}

BLIP = Family(
    name="blip",
    model_types=("blip",),
    num_layers=attr("num_hidden_layers"),
    root=("text_encoder", "text_model"),
    config_path="text_config",
    components={
        **bert_components("intermediate_act_fn"),
        **tower(BLIP_VISION, "vision_model", "vision_config", prefix="vision."),
        "itm_output": Component(
            "itm_head", "output", lambda c: 2, root=(), config_path="", num_layers=lambda c: 1,
            doc="image-text matching logits (BlipForImageTextRetrieval); layer 0",
        ),
    },
    no_stack="vision-language model: the fast path covers decoder-only language models (sweeps run the whole model)",
)  # fmt: skip
