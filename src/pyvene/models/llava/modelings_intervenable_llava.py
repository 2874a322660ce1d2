"""The original's import path of create_llava (built locally, never downloaded)."""

from ..hf_factories import create_llava

__all__ = ["create_llava"]
