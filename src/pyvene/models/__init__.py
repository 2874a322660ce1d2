"""Bundled research models (MLP, GRU), their local factories, and the original pyvene's
``pyvene.models.*`` import paths (constants, basic_utils, modeling_utils, interventions,
intervenable_base, configuration_intervenable_model, per-architecture factory modules), loaded
on first attribute access so ``pv.models.constants.CONST_OUTPUT_HOOK`` works. Every name is
imported on first use (the MLP / GRU models import transformers).

This package is the original-API edge: the core never imports it. Importing it (any
``pyvene.models.*`` path, or ``pv.type_to_module_mapping``) registers the class-keyed
registries' resolver with :func:`pyvene.families.register_site_resolver`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import legacy_mapping as legacy_mapping  # registers the pv.type_to_* site resolver

_NAMES = {
    "create_gru": "factories", "create_gru_classifier": "factories", "create_gru_lm": "factories",
    "create_mlp_classifier": "factories", "GRUCell": "gru.modelings_gru",
    "GRUConfig": "gru.modelings_gru", "GRUForClassification": "gru.modelings_gru",
    "GRULMHeadModel": "gru.modelings_gru", "GRUModel": "gru.modelings_gru",
    "MLPBlock": "mlp.modelings_mlp", "MLPConfig": "mlp.modelings_mlp",
    "MLPForClassification": "mlp.modelings_mlp", "MLPModel": "mlp.modelings_mlp",
}  # fmt: skip

_SUBMODULES = (
    "basic_utils", "blip", "configuration_intervenable_model", "constants", "factories", "gpt2",
    "gpt_neo", "gpt_neox", "gru", "hf_factories", "intervenable_base", "intervention_utils",
    "interventions", "legacy_registry", "llama", "llava", "mlp", "modeling_utils", "olmo",
)  # fmt: skip

if TYPE_CHECKING:
    from .factories import create_gru, create_gru_classifier, create_gru_lm, create_mlp_classifier
    from .gru.modelings_gru import (
        GRUCell,
        GRUConfig,
        GRUForClassification,
        GRULMHeadModel,
        GRUModel,
    )
    from .mlp.modelings_mlp import MLPBlock, MLPConfig, MLPForClassification, MLPModel


def __getattr__(name: str) -> Any:
    # transformers-based models: imported on first use (``import pyvene`` stays fast)
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
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
