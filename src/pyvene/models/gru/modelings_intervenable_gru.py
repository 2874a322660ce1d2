"""The original's import path of the GRU factories."""

from ..factories import create_gru, create_gru_classifier, create_gru_lm

__all__ = ["create_gru", "create_gru_classifier", "create_gru_lm"]
