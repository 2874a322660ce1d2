"""SigmoidMaskIntervention: a learned, neuron-aligned (localist) soft mask over the last dim."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DimensionMismatchError
from .base import LocalistRepresentationIntervention, TrainableIntervention
from .registry import register
from .swapping import broadcast_source


@register()
class SigmoidMaskIntervention(LocalistRepresentationIntervention, TrainableIntervention):
    """``m = sigmoid(mask / T)`` per feature (``mask`` init 0 so ``m = 0.5``; ``T`` init 0.01);
    ``out = (1 - m) * b + m * s``. Localist: acts on the last dim of every unit/position, so
    the mask has the component's width (``embed_dim / max_number_of_units``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.embed_dim is None:
            raise ConfigError(
                "SigmoidMaskIntervention needs embed_dim (the feature width), e.g. "
                "SigmoidMaskIntervention(embed_dim=16)"
            )
        units = int(kwargs.get("max_number_of_units") or 1)
        self.width = self.embed_dim // units if self.embed_dim % units == 0 else self.embed_dim
        self.mask = nn.Parameter(torch.zeros(self.width))
        self.temperature = nn.Parameter(torch.tensor(0.01))

    def get_temperature(self) -> nn.Parameter:
        return self.temperature

    def set_temperature(self, temp: float | torch.Tensor) -> None:
        self.temperature.data = torch.as_tensor(temp, dtype=torch.float32).to(self.temperature)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if source is None:
            raise ConfigError("SigmoidMaskIntervention needs a source")
        if base.shape[-1] != self.width:
            raise DimensionMismatchError(
                f"SigmoidMaskIntervention has a mask of width {self.width} but got features of "
                f"width {base.shape[-1]} (shape {tuple(base.shape)})"
            )
        m = torch.sigmoid(self.mask / self.temperature)
        b = base.to(m.dtype)
        s = broadcast_source(source, base).to(m.dtype)
        return ((1.0 - m) * b + m * s).to(base.dtype)
