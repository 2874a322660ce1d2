"""Interventions without parameters: swap, add, subtract, zero, collect, noise, skip,
constant source, and the wrapper for plain functions."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..devices import real_weight
from ..errors import ConfigError
from .base import (
    BasisAgnosticIntervention,
    ConstantSourceIntervention,
    Intervention,
    LocalistRepresentationIntervention,
)
from .registry import register
from .swapping import swap


class _SwapMixin:
    """Shared forward of the swap family: the source is the constant one when set."""

    swap_mode = "interchange"

    def forward(self, base, source=None, subspaces=None, **kwargs):
        constant = self.constant_source()
        if constant is not None:
            source = constant
        return self.swap(base, source, self.swap_mode, subspaces)


@register()
class VanillaIntervention(_SwapMixin, LocalistRepresentationIntervention, Intervention):
    """Replace the base activation with the source's: ``b[dims] = s[dims]``."""


@register()
class AdditionIntervention(
    _SwapMixin, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """Add the source: ``b[dims] += s[dims]`` (steering with a constant source vector)."""

    swap_mode = "add"


@register()
class SubtractionIntervention(
    _SwapMixin, LocalistRepresentationIntervention, BasisAgnosticIntervention
):
    """Subtract the source: ``b[dims] -= s[dims]``."""

    swap_mode = "subtract"


@register()
class ZeroIntervention(LocalistRepresentationIntervention, ConstantSourceIntervention):
    """Set the chosen dims to zero (knockout); needs no source."""

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return self.swap(base, torch.zeros_like(base), "interchange", subspaces)


@register()
class CollectIntervention(ConstantSourceIntervention):
    """Record the activation (chosen dims) without changing the model."""

    is_collect: ClassVar[bool] = True
    is_repr_distributed: ClassVar[bool] = False

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return swap(base, None, "collect", None, subspaces, self.subspace_partition, self.use_fast)


@register()
class SkipIntervention(LocalistRepresentationIntervention, BasisAgnosticIntervention):
    """Replace the module's output with the source run's *input* of the same module: the
    source read happens on the module input, so the module is skipped."""

    source_from_input: ClassVar[bool] = True

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return self.swap(base, source, "interchange", subspaces)


ROME_GPT2_XL_NOISE = 0.13462981581687927  # 3 x std of GPT-2 XL token embeddings (ROME)


@register()
class NoiseIntervention(LocalistRepresentationIntervention, ConstantSourceIntervention):
    """Add seeded Gaussian noise ``noise_level * N(0, 1)`` of the activation's shape.

    The same seed gives the same noise on every call, as causal tracing needs (the corrupted
    baseline and every restored run see identical noise). ``noise_level`` defaults to ROME's
    value for GPT-2 XL; use :func:`pyvene.embedding_noise_level` for other models.
    """

    init_args = ("noise_leve",)  # the original's spelling

    def __init__(self, noise_level: float | None = None, seed: int = 1, **kwargs: Any) -> None:
        level = noise_level if noise_level is not None else kwargs.pop("noise_leve", None)
        if not isinstance(level, (numbers.Real, type(None))) or not isinstance(
            seed, numbers.Integral
        ):
            raise ConfigError(
                f"NoiseIntervention takes a float noise_level and an int seed, got "
                f"noise_level={level!r}, seed={seed!r}"
            )
        super().__init__(**kwargs)
        self.noise_level = float(ROME_GPT2_XL_NOISE if level is None else level)
        self.seed = int(seed)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        gen = torch.Generator(device=base.device).manual_seed(self.seed)
        noise = torch.randn(base.shape, generator=gen, device=base.device, dtype=torch.float32)
        noised = base + (noise * self.noise_level).to(base.dtype)
        if subspaces is None and self.interchange_dim in (None, base.shape[-1]):
            return noised
        return self.swap(base, noised, "interchange", subspaces)


def embedding_noise_level(model: torch.nn.Module, multiple: float = 3.0) -> float:
    """ROME's noise scale: ``multiple`` x the (unbiased) std of the model's input token
    embeddings, computed in row chunks on the embedding's device with float64 sums (no float32
    copy of the whole matrix); offloaded (``meta``) weights are read through accelerate's
    weights map."""
    weight = real_weight(model.get_input_embeddings(), "weight").detach()
    flat = weight.reshape(-1, weight.shape[-1])
    step = max(1, (1 << 22) // max(1, flat.shape[-1]))  # ~4M elements per chunk
    total = torch.zeros((), dtype=torch.float64, device=flat.device)
    for i in range(0, flat.shape[0], step):
        total += flat[i : i + step].sum(dtype=torch.float64)
    mean = total / flat.numel()
    squares = torch.zeros((), dtype=torch.float64, device=flat.device)
    for i in range(0, flat.shape[0], step):
        squares += (flat[i : i + step].double() - mean).square().sum()
    return float(multiple * (squares / max(1, flat.numel() - 1)).sqrt())


@register()
class LambdaIntervention(LocalistRepresentationIntervention, Intervention):
    """Wraps a plain function ``f(base, source)`` or ``f(base, source, subspaces)``; returning
    None leaves the activation unchanged."""

    is_source_constant: ClassVar[bool] = True  # a function may ignore its source

    def __init__(self, fn: Callable, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fn = fn

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if subspaces is not None:
            return self.fn(base, source, subspaces)
        return self.fn(base, source)
