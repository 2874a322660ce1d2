"""Local model factories for the bundled research models: no network. A tokenizer is loaded
only when ``tokenizer_name`` is given (from a local folder or the HF cache)."""

from __future__ import annotations

from typing import Any

from .gru import GRUConfig, GRUForClassification, GRULMHeadModel, GRUModel
from .mlp import MLPConfig, MLPForClassification


def _tokenizer(tokenizer_name: str | None, cache_dir: str | None) -> Any:
    if tokenizer_name is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_name, cache_dir=cache_dir)


def create_mlp_classifier(config: MLPConfig, tokenizer_name=None, cache_dir=None):
    """``(config, tokenizer_or_None, MLPForClassification(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), MLPForClassification(config)


def create_gru_classifier(config: GRUConfig, tokenizer_name=None, cache_dir=None):
    """``(config, tokenizer_or_None, GRUForClassification(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), GRUForClassification(config)


def create_gru(config: GRUConfig, tokenizer_name=None, cache_dir=None):
    """``(config, tokenizer_or_None, GRUModel(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), GRUModel(config)


def create_gru_lm(config: GRUConfig, tokenizer_name=None, cache_dir=None):
    """``(config, tokenizer_or_None, GRULMHeadModel(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), GRULMHeadModel(config)
