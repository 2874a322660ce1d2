"""The original's import path of create_gpt2, create_gpt2_lm (built locally, never downloaded)."""

from ...zoo import create_gpt2, create_gpt2_lm

__all__ = ["create_gpt2", "create_gpt2_lm"]
