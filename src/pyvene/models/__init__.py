"""Bundled research models (MLP, GRU) and their local factories."""

from .factories import create_gru, create_gru_classifier, create_gru_lm, create_mlp_classifier
from .gru import GRUCell, GRUConfig, GRUForClassification, GRULMHeadModel, GRUModel
from .mlp import MLPBlock, MLPConfig, MLPForClassification, MLPModel

__all__ = [
    "GRUCell",
    "GRUConfig",
    "GRUForClassification",
    "GRULMHeadModel",
    "GRUModel",
    "MLPBlock",
    "MLPConfig",
    "MLPForClassification",
    "MLPModel",
    "create_gru",
    "create_gru_classifier",
    "create_gru_lm",
    "create_mlp_classifier",
]
