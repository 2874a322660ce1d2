"""The original's import path of the configuration classes."""

from ..config import IntervenableConfig, RepresentationConfig

__all__ = ["IntervenableConfig", "RepresentationConfig"]
