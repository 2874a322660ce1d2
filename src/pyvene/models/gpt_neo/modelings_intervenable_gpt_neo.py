"""The original's import path of create_gpt_neo (built locally, never downloaded)."""

from ..hf_factories import create_gpt_neo

__all__ = ["create_gpt_neo"]
