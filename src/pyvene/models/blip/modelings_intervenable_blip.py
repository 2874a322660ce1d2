"""The original's import path of create_blip (built locally, never downloaded)."""

from ..hf_factories import create_blip

__all__ = ["create_blip"]
