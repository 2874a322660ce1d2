"""The original's import path of the MLP factory."""

from ..factories import create_mlp_classifier

__all__ = ["create_mlp_classifier"]
