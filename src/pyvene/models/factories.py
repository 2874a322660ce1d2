"""Local model factories for the bundled research models: no network. A tokenizer is loaded
only when ``tokenizer_name`` is given (a local folder or an already cached hub name)."""

from __future__ import annotations

from typing import Any

from torch import nn

from .gru.modelings_gru import GRUConfig, GRUForClassification, GRULMHeadModel, GRUModel
from .mlp.modelings_mlp import MLPConfig, MLPForClassification


def _tokenizer(tokenizer_name: str | None, cache_dir: str | None) -> Any:
    if tokenizer_name is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_name, cache_dir=cache_dir, local_files_only=True)


def create_mlp_classifier(
    config: MLPConfig, tokenizer_name: str | None = None, cache_dir: str | None = None
) -> tuple[MLPConfig, Any, nn.Module]:
    """``(config, tokenizer_or_None, MLPForClassification(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), MLPForClassification(config)


def create_gru_classifier(
    config: GRUConfig, tokenizer_name: str | None = None, cache_dir: str | None = None
) -> tuple[GRUConfig, Any, nn.Module]:
    """``(config, tokenizer_or_None, GRUForClassification(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), GRUForClassification(config)


def create_gru(
    config: GRUConfig, tokenizer_name: str | None = None, cache_dir: str | None = None
) -> tuple[GRUConfig, Any, nn.Module]:
    """``(config, tokenizer_or_None, GRUModel(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), GRUModel(config)


def create_gru_lm(
    config: GRUConfig, tokenizer_name: str | None = None, cache_dir: str | None = None
) -> tuple[GRUConfig, Any, nn.Module]:
    """``(config, tokenizer_or_None, GRULMHeadModel(config))``."""
    return config, _tokenizer(tokenizer_name, cache_dir), GRULMHeadModel(config)
