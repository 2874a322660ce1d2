"""The original's import path of create_llama (built locally, never downloaded)."""

from ...zoo import create_llama

__all__ = ["create_llama"]
