"""Factories of the original's other architectures (SPEC B §8.2), without the network: each
builds a seeded tiny random model from a config (a small default one when None) or loads a
local ``save_pretrained`` folder given as a path. Same return shapes as the original:
``(config, tokenizer_or_None, model)``; ``create_llava`` adds the image processor (None for
random models); ``create_blip`` / ``create_blip_itm`` return ``(config, processor, model)``."""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import (
    BlipConfig,
    BlipForImageTextRetrieval,
    BlipForQuestionAnswering,
    CLIPVisionConfig,
    GPTNeoConfig,
    GPTNeoForCausalLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    OlmoConfig,
    OlmoForCausalLM,
)

from ..errors import PyveneError
from ..zoo import build_model, tiny_llama_config

ConfigOrPath = Any  # a transformers config, a local folder path, or None (tiny default)

_IDS = dict(bos_token_id=0, eos_token_id=0, pad_token_id=0)


def tiny_gpt_neo_config(**overrides: Any) -> GPTNeoConfig:
    """3 layers (global, local, global attention; window 8), d=32, 4 heads, vocab 1000."""
    kwargs: dict[str, Any] = dict(
        vocab_size=1000, hidden_size=32, num_layers=3, num_heads=4, max_position_embeddings=128,
        attention_types=[[["global", "local"], 1], [["global"], 1]], window_size=8,
        embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0,
        bos_token_id=0, eos_token_id=0, attn_implementation="eager",
    )  # fmt: skip
    kwargs.update(overrides)
    return GPTNeoConfig(**kwargs)


def tiny_gpt_neox_config(**overrides: Any) -> GPTNeoXConfig:
    """3 layers, d=32, 4 heads, vocab 1000, no dropout."""
    kwargs: dict[str, Any] = dict(
        vocab_size=1000, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128, hidden_dropout=0.0,
        attention_dropout=0.0, attn_implementation="eager", **_IDS,
    )  # fmt: skip
    kwargs.update(overrides)
    return GPTNeoXConfig(**kwargs)


def tiny_olmo_config(**overrides: Any) -> OlmoConfig:
    """3 layers, d=32, 4 query / 2 kv heads, vocab 1000."""
    kwargs: dict[str, Any] = dict(
        vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        tie_word_embeddings=False, attn_implementation="eager", **_IDS,
    )  # fmt: skip
    kwargs.update(overrides)
    return OlmoConfig(**kwargs)


def _vision(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=16, patch_size=8,
    )  # fmt: skip
    kwargs.update(overrides)
    return kwargs


def tiny_llava_config(**overrides: Any) -> LlavaConfig:
    """Tiny GQA llama text model + 2-layer CLIP vision tower on 16x16 images (4 patches);
    image token = last vocab id."""
    text = tiny_llama_config()
    kwargs: dict[str, Any] = dict(
        text_config=text,
        vision_config=CLIPVisionConfig(**_vision()),
        image_token_index=text.vocab_size - 1,
    )
    kwargs.update(overrides)
    return LlavaConfig(**kwargs)


def tiny_blip_config(**overrides: Any) -> BlipConfig:
    """2-layer text and vision towers, d=32, 4 heads, 16x16 images."""
    text = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        vocab_size=1000, max_position_embeddings=64, bos_token_id=0,
    )  # fmt: skip
    kwargs: dict[str, Any] = dict(
        text_config=text, vision_config=_vision(), projection_dim=32, image_text_hidden_size=32
    )
    kwargs.update(overrides)
    return BlipConfig(**kwargs)


def _create(
    model_cls: type,
    config: ConfigOrPath,
    default: Any,
    seed: int,
    dtype: torch.dtype,
    with_tokenizer: bool = False,
) -> tuple[Any, Any, Any]:
    source = default() if config is None else config
    config, tokenizer, model = build_model(model_cls, source, seed, with_tokenizer)
    return config, tokenizer, model.to(dtype)


def create_gpt_neo(
    config: ConfigOrPath = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    *,
    with_tokenizer: bool = False,
) -> tuple[Any, Any, GPTNeoForCausalLM]:
    """Seeded random (or local) ``GPTNeoForCausalLM``: ``(config, tokenizer, model)``."""
    return _create(GPTNeoForCausalLM, config, tiny_gpt_neo_config, seed, dtype, with_tokenizer)


def create_gpt_neox(
    config: ConfigOrPath = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    *,
    with_tokenizer: bool = False,
) -> tuple[Any, Any, GPTNeoXForCausalLM]:
    """Seeded random (or local) ``GPTNeoXForCausalLM``: ``(config, tokenizer, model)``."""
    return _create(GPTNeoXForCausalLM, config, tiny_gpt_neox_config, seed, dtype, with_tokenizer)


def create_olmo(
    config: ConfigOrPath = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    *,
    with_tokenizer: bool = False,
) -> tuple[Any, Any, OlmoForCausalLM]:
    """Seeded random (or local) ``OlmoForCausalLM``: ``(config, tokenizer, model)``."""
    return _create(OlmoForCausalLM, config, tiny_olmo_config, seed, dtype, with_tokenizer)


def create_llava(
    config: ConfigOrPath = None, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Any, Any, LlavaForConditionalGeneration, Any]:
    """Seeded random (or local) ``LlavaForConditionalGeneration``: the original's 4-tuple
    ``(config, tokenizer, model, image_processor)``; both processors are None for a random
    model. Random inputs: ``pixel_values`` (B, 3, 16, 16) and 4 image tokens per prompt."""
    folder = config if isinstance(config, (str, os.PathLike)) else None
    config, tokenizer, model = _create(
        LlavaForConditionalGeneration, config, tiny_llava_config, seed, dtype
    )
    processor = None
    if folder is not None and os.path.isfile(os.path.join(folder, "preprocessor_config.json")):
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return config, tokenizer, model, processor


def create_blip(
    config: ConfigOrPath = None, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Any, Any, BlipForQuestionAnswering]:
    """Seeded random (or local) ``BlipForQuestionAnswering``: ``(config, processor, model)``
    (processor None for a random model)."""
    return _create(BlipForQuestionAnswering, config, tiny_blip_config, seed, dtype)


def create_blip_itm(
    config: ConfigOrPath = None, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Any, Any, BlipForImageTextRetrieval]:
    """Seeded random (or local) ``BlipForImageTextRetrieval``: ``(config, processor, model)``."""
    return _create(BlipForImageTextRetrieval, config, tiny_blip_config, seed, dtype)


_SUPPORTED = (
    "create_gpt2, create_gpt2_lm, create_llama, create_gpt_neo, create_gpt_neox, create_olmo, "
    "create_llava, create_blip, create_blip_itm, create_mlp_classifier, create_gru, "
    "create_gru_lm, create_gru_classifier"
)


def create_backpack_gpt2(*args: Any, **kwargs: Any) -> Any:
    """Not supported: Backpack GPT-2 needs remote code (``trust_remote_code``)."""
    raise PyveneError(
        "create_backpack_gpt2 is not supported (the model needs remote code from the hub, and "
        f"pyvene's factories never download). Supported factories: {_SUPPORTED}"
    )


def create_gpt_oss(*args: Any, **kwargs: Any) -> Any:
    """Not supported: gpt-oss has no component table here."""
    raise PyveneError(
        "create_gpt_oss is not supported (no gpt_oss component table; pyvene's factories "
        f"never download). Supported factories: {_SUPPORTED}. Any model also works with "
        "module-path components ('<module path>.output')."
    )


__all__ = [
    "create_backpack_gpt2",
    "create_blip",
    "create_blip_itm",
    "create_gpt_neo",
    "create_gpt_neox",
    "create_gpt_oss",
    "create_llava",
    "create_olmo",
    "tiny_blip_config",
    "tiny_gpt_neo_config",
    "tiny_gpt_neox_config",
    "tiny_llava_config",
    "tiny_olmo_config",
]
