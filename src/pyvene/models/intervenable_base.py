"""The original's import path of the wrapper classes, plus its backend dispatcher.

The NDIF / nnsight backend is not supported (SPEC A): ``IntervenableNdifModel`` raises, and
``build_intervenable_model`` always builds the native :class:`IntervenableModel`."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import PyveneError
from ..intervenable import IntervenableModel, IntervenableModelOutput

_NDIF = (
    "the NDIF / nnsight backend is not supported; wrap the underlying torch model with "
    "pv.IntervenableModel(config, model) instead"
)


class IntervenableNdifModel:
    """Placeholder of the original's nnsight-backed wrapper: constructing it raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise PyveneError(_NDIF)


def build_intervenable_model(config: Any, model: nn.Module, **kwargs: Any) -> IntervenableModel:
    """``IntervenableModel(config, model, **kwargs)``; an nnsight model raises (not supported)."""
    if type(model).__module__.split(".")[0] == "nnsight":
        raise PyveneError(f"{type(model).__name__} is an nnsight model: {_NDIF}")
    return IntervenableModel(config, model, **kwargs)


__all__ = [
    "IntervenableModel",
    "IntervenableModelOutput",
    "IntervenableNdifModel",
    "build_intervenable_model",
]
