"""Tiny seeded random models shared by the tests (no downloads)."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()

VOCAB = 50


def make_gpt2(seed: int = 0, n_layer: int = 3) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_embd=24, n_head=4, n_layer=n_layer, vocab_size=VOCAB, n_positions=64,
        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    cfg._attn_implementation = "eager"
    return GPT2LMHeadModel(cfg).eval()


def make_llama(seed: int = 0, head_dim: int | None = None, n_layer: int = 3) -> LlamaForCausalLM:
    """GQA: 4 query heads, 2 key/value heads; ``head_dim`` != hidden/heads when given."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=32, intermediate_size=48, num_hidden_layers=n_layer, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64,
        head_dim=head_dim or 8, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    cfg._attn_implementation = "eager"
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def gpt2():
    return make_gpt2()


@pytest.fixture(scope="session")
def llama():
    return make_llama()


@pytest.fixture(scope="session")
def llama_wide_heads():
    return make_llama(head_dim=16)


def ids(batch: int, seq: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, VOCAB, (batch, seq), generator=g)}
