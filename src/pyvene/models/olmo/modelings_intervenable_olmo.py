"""The original's import path of create_olmo (built locally, never downloaded)."""

from ..hf_factories import create_olmo

__all__ = ["create_olmo"]
