"""The original's import path of create_gpt_neox (built locally, never downloaded)."""

from ..hf_factories import create_gpt_neox

__all__ = ["create_gpt_neox"]
