"""Tiny seeded random models of every registered family type (no downloads), with a
function making their inputs; used by tests/test_families.py."""

from __future__ import annotations

from functools import partial

import torch
import transformers as T
from transformers.utils import logging

from pyvene.models import GRUConfig, GRUForClassification, MLPConfig, MLPForClassification

logging.set_verbosity_error()
V = 60  # vocab
LAYER = 1

# --------------------------------------------------------------------------- tiny models
TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
GQA = dict(TEXT, num_key_value_heads=2, head_dim=16, vocab_size=V, max_position_embeddings=64)
GQA_IDS = dict(bos_token_id=0, eos_token_id=0, pad_token_id=0)

LLAMA_LIKE = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "gemma": ("GemmaConfig", "GemmaForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
    "olmo": ("OlmoConfig", "OlmoForCausalLM"),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM"),
}


def token_ids(batch, seq, seed, low=1, high=V):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (batch, seq), generator=g)


def seeded_randn(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def text_inputs(batch, seed):
    return {"input_ids": token_ids(batch, 7, seed)}


def tiny_mixtral():
    cfg = T.MixtralConfig(**GQA, **GQA_IDS, num_local_experts=4, num_experts_per_tok=2)
    return T.MixtralForCausalLM(cfg), text_inputs


def tiny_phi():
    cfg = T.PhiConfig(**{**GQA, "head_dim": 8}, **GQA_IDS, resid_pdrop=0.0)
    return T.PhiForCausalLM(cfg), text_inputs


def tiny_phi3():
    cfg = T.Phi3Config(**{**GQA, "head_dim": 8}, **GQA_IDS)
    return T.Phi3ForCausalLM(cfg), text_inputs


def tiny_gpt2():
    cfg = T.GPT2Config(n_embd=32, n_head=4, n_layer=2, vocab_size=V, n_positions=64)
    return T.GPT2LMHeadModel(cfg), text_inputs


def tiny_gpt_neo():
    cfg = T.GPTNeoConfig(
        hidden_size=32, num_layers=2, num_heads=4, vocab_size=V, max_position_embeddings=64,
        attention_types=[[["global", "local"], 1]], window_size=4,
    )  # fmt: skip
    return T.GPTNeoForCausalLM(cfg), text_inputs


def tiny_gpt_neox():
    cfg = T.GPTNeoXConfig(**TEXT, vocab_size=V, max_position_embeddings=64)
    return T.GPTNeoXForCausalLM(cfg), text_inputs


def tiny_opt():
    cfg = T.OPTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
        vocab_size=V, word_embed_proj_dim=32, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    return T.OPTForCausalLM(cfg), text_inputs


def tiny_esm():
    cfg = T.EsmConfig(
        **TEXT, vocab_size=V, pad_token_id=1, mask_token_id=2, max_position_embeddings=64
    )
    return T.EsmForMaskedLM(cfg), text_inputs


def tiny_mamba():
    cfg = T.MambaConfig(hidden_size=16, num_hidden_layers=2, vocab_size=V, state_size=4)
    return T.MambaForCausalLM(cfg), text_inputs


def tiny_blip():
    small = dict(TEXT, num_attention_heads=4)
    cfg = T.BlipConfig(
        text_config=dict(**small, vocab_size=V, max_position_embeddings=64),
        vision_config=dict(**small, image_size=16, patch_size=8),
        projection_dim=32, image_text_hidden_size=32,
    )  # fmt: skip

    def blip_inputs(batch, seed):
        return {
            "input_ids": token_ids(batch, 7, seed),
            "pixel_values": seeded_randn((batch, 3, 16, 16), seed),
        }

    return T.BlipForImageTextRetrieval(cfg), blip_inputs


def tiny_llava():
    text = T.LlamaConfig(**GQA, **GQA_IDS)
    vision = T.CLIPVisionConfig(**TEXT, image_size=16, patch_size=8)
    cfg = T.LlavaConfig(text_config=text, vision_config=vision, image_token_index=V - 1)

    def llava_inputs(batch, seed):
        ids = token_ids(batch, 7, seed, high=V - 1)
        ids[:, 1:5] = V - 1  # 4 image tokens = (16 / 8) ** 2 patches
        return {"input_ids": ids, "pixel_values": seeded_randn((batch, 3, 16, 16), seed)}

    return T.LlavaForConditionalGeneration(cfg), llava_inputs


def tiny_whisper():
    cfg = T.WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=40, num_mel_bins=8,
        max_source_positions=8, max_target_positions=32, vocab_size=V, pad_token_id=0,
        bos_token_id=0, eos_token_id=0, decoder_start_token_id=0,
    )  # fmt: skip

    def whisper_inputs(batch, seed):
        return {
            "input_features": seeded_randn((batch, 8, 16), seed),
            "decoder_input_ids": token_ids(batch, 5, seed),
        }

    return T.WhisperForConditionalGeneration(cfg), whisper_inputs


def tiny_mlp():
    cfg = MLPConfig(h_dim=16, n_layer=2, num_classes=3, pdrop=0.0)

    def mlp_inputs(batch, seed):
        return {"inputs_embeds": seeded_randn((batch, 1, 16), seed)}

    return MLPForClassification(cfg), mlp_inputs


def tiny_gru():
    cfg = GRUConfig(h_dim=16, n_layer=2, n_labels=3, pdrop=0.0)

    def gru_inputs(batch, seed):
        return {"inputs_embeds": seeded_randn((batch, 5, 16), seed)}

    return GRUForClassification(cfg), gru_inputs


def tiny_llama_like(model_type):
    cfg_name, cls = LLAMA_LIKE[model_type]
    return getattr(T, cls)(getattr(T, cfg_name)(**GQA, **GQA_IDS)), text_inputs


def tiny_encoder(model_type):
    cls = T.BertForMaskedLM if model_type == "bert" else T.RobertaForMaskedLM
    cfg_cls = T.BertConfig if model_type == "bert" else T.RobertaConfig
    cfg = cfg_cls(**TEXT, vocab_size=V, max_position_embeddings=64, pad_token_id=0)
    return cls(cfg), text_inputs


TINY = {
    **{model_type: partial(tiny_llama_like, model_type) for model_type in LLAMA_LIKE},
    "bert": partial(tiny_encoder, "bert"),
    "roberta": partial(tiny_encoder, "roberta"),
    "mixtral": tiny_mixtral,
    "phi": tiny_phi,
    "phi3": tiny_phi3,
    "gpt2": tiny_gpt2,
    "gpt_neo": tiny_gpt_neo,
    "gpt_neox": tiny_gpt_neox,
    "opt": tiny_opt,
    "esm": tiny_esm,
    "mamba": tiny_mamba,
    "blip": tiny_blip,
    "llava": tiny_llava,
    "whisper": tiny_whisper,
    "mlp": tiny_mlp,
    "gru": tiny_gru,
}


def build(model_type):
    """(model, inputs(batch, seed) -> dict), weights seeded with 0."""
    if model_type not in TINY:
        raise KeyError(f"no tiny model for {model_type!r}: add one to tests/family_models.py")
    torch.manual_seed(0)
    return TINY[model_type]()
