"""The original's import path of create_blip_itm (built locally, never downloaded)."""

from ..hf_factories import create_blip_itm

__all__ = ["create_blip_itm"]
