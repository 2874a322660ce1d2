"""The bundled MLP research model (``pyvene.models.mlp.modelings_mlp``) and its factory."""

from .modelings_mlp import MLPBlock, MLPConfig, MLPForClassification, MLPModel

__all__ = ["MLPBlock", "MLPConfig", "MLPForClassification", "MLPModel"]
