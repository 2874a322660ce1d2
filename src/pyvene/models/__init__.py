"""Bundled research models (MLP, GRU), their local factories, and the original pyvene's
``pyvene.models.*`` import paths (constants, basic_utils, modeling_utils, interventions,
intervenable_base, configuration_intervenable_model, per-architecture factory modules), loaded
on first attribute access so ``pv.models.constants.CONST_OUTPUT_HOOK`` works."""

from __future__ import annotations

import importlib
from typing import Any

from .factories import create_gru, create_gru_classifier, create_gru_lm, create_mlp_classifier
from .gru.modelings_gru import GRUCell, GRUConfig, GRUForClassification, GRULMHeadModel, GRUModel
from .mlp.modelings_mlp import MLPBlock, MLPConfig, MLPForClassification, MLPModel

_SUBMODULES = (
    "basic_utils", "blip", "configuration_intervenable_model", "constants", "gpt2", "gpt_neo",
    "gpt_neox", "gru", "hf_factories", "intervenable_base", "intervention_utils",
    "interventions", "llama", "llava", "mlp", "modeling_utils", "olmo",
)  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
