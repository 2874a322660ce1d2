"""The bundled GRU research model (``pyvene.models.gru.modelings_gru``) and its factories."""

from .modelings_gru import GRUCell, GRUConfig, GRUForClassification, GRULMHeadModel, GRUModel

__all__ = ["GRUCell", "GRUConfig", "GRUForClassification", "GRULMHeadModel", "GRUModel"]
