"""Rotation-family (distributed) interventions: DAS and its variants.

All of them change the base only inside a learned (or fitted) basis:

* :class:`RotatedSpaceIntervention` - full orthogonal ``R`` (D x D): ``out = mix(bR, sR) R^T``.
* :class:`LowRankRotatedSpaceIntervention` - ``W`` (D x r, orthonormal columns):
  ``out = b + ((s - b) W) W^T`` on the chosen latent columns.
* :class:`BoundlessRotatedSpaceIntervention` - ``R`` plus a learned soft boundary over rotated
  dims: ``out = ((1 - m) bR + m sR) R^T``.
* :class:`SigmoidMaskRotatedSpaceIntervention` - ``R`` plus one learned sigmoid gate per dim.
* :class:`PCARotatedSpaceIntervention` - a fitted (not trained) PCA basis.

Shapes: the engine hands ``(B, U*D)`` with explicit unit locations (units flattened into one
vector, so ``embed_dim = D * max_number_of_units``), ``(B, P, H*Dh)`` for heads, and
``(B, S, D)`` per position when no unit locations are given; every class works on the last
dim and broadcasts over the leading ones. Rotations are kept in float32 (also after
``.to(torch.bfloat16)``) and inputs are cast at the boundary, so ``R`` stays orthogonal under
fp16/bf16 models; outputs come back in the base's dtype.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from ..errors import ConfigError, DimensionMismatchError, user_stacklevel
from .base import (
    BasisAgnosticIntervention,
    DistributedRepresentationIntervention,
    TrainableIntervention,
)
from .registry import register
from .swapping import broadcast_source, dims_mask, subspace_dims

_HALF = (torch.float16, torch.bfloat16)


class RotateLayer(nn.Module):
    """``x @ weight`` with ``weight`` of shape ``(n, m)``, orthogonally initialised; wrap it
    with :func:`orthogonal_rotation` to keep it orthogonal (m == n) or with orthonormal
    columns (m < n) while training. Its floating parameters stay float32 under ``.to(half)``."""

    def __init__(self, n: int, m: int | None = None, init_orth: bool = True) -> None:
        super().__init__()
        weight = torch.empty(n, n if m is None else m)
        if init_orth:
            nn.init.orthogonal_(weight)
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.weight.dtype) @ self.weight

    def _apply(self, fn: Any, recurse: bool = True) -> RotateLayer:
        def keep_float32(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)  # device moves pass; a half cast of a float32 tensor is refused
            if out.dtype in _HALF and t.dtype == torch.float32:
                return t.to(out.device)
            return out

        return super()._apply(keep_float32, recurse)


def orthogonal_rotation(n: int, m: int | None = None) -> nn.Module:
    """A :class:`RotateLayer` under ``torch.nn.utils.parametrizations.orthogonal`` (state-dict
    keys ``parametrizations.weight.original`` as in the original pyvene)."""
    return orthogonal(RotateLayer(n, m))


def _need_dim(name: str, embed_dim: int | None) -> int:
    if embed_dim is None:
        raise ConfigError(
            f"{name} needs embed_dim (the width of the intervened vector): module-path "
            f"components have no known width, so pass an instance such as "
            f"{name}(embed_dim=16) as the representation's intervention"
        )
    return int(embed_dim)


def _check_width(name: str, x: torch.Tensor, width: int) -> None:
    if x.shape[-1] != width:
        raise DimensionMismatchError(
            f"{name} was built for vectors of width {width} (embed_dim = component dim x "
            f"max_number_of_units) but got shape {tuple(x.shape)}; with unit_locations select "
            f"exactly max_number_of_units units, without them use max_number_of_units=1"
        )


def _selection(
    intervention: Any, x: torch.Tensor, width: int, subspaces: Any
) -> torch.Tensor | None:
    """Boolean mask (broadcastable to ``x[..., :width]``) of the dims to take from the source:
    per-example ``subspaces`` (through ``subspace_partition``), else the first
    ``interchange_dim``; None means every dim."""
    dims = subspace_dims(
        subspaces, intervention.subspace_partition, x.shape[0], intervention.use_fast
    )
    if dims is not None:
        return dims_mask(dims, x[..., :width])
    k = intervention.interchange_dim
    if isinstance(k, torch.Tensor):
        k = int(k.item())
    if k is None or k >= width:
        return None
    mask = torch.zeros(width, dtype=torch.bool, device=x.device)
    mask[: int(k)] = True
    return mask


class _Rotated(TrainableIntervention, DistributedRepresentationIntervention):
    """Shared parts: a float32 (D x D) rotation ``rotate_layer`` built from ``embed_dim``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width = _need_dim(type(self).__name__, self.embed_dim)
        self.rotate_layer = orthogonal_rotation(self.width)

    def rotation(self) -> torch.Tensor:
        """The current orthogonal matrix ``R`` (float32, D x D)."""
        return self.rotate_layer.weight

    def _rotate_pair(self, base: torch.Tensor, source: torch.Tensor | None):
        if source is None:
            raise ConfigError(f"{type(self).__name__} needs a source (a source input or tensor)")
        _check_width(type(self).__name__, base, self.width)
        source = broadcast_source(source, base)
        r = self.rotation()
        return r, base.to(r.dtype) @ r, source.to(r.dtype) @ r


@register()
class RotatedSpaceIntervention(_Rotated):
    """DAS with a full orthogonal rotation ``R``: ``out = mix(bR, sR) R^T`` where ``mix`` takes
    the chosen rotated dims from the source (subspaces, else the first ``interchange_dim``;
    by default all of them, which equals a plain swap - call ``set_interchange_dim(k)`` or pass
    subspaces for DAS). ``low_rank_dimension`` has no effect here (see
    :class:`LowRankRotatedSpaceIntervention`)."""

    _warned_low_rank = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if (
            kwargs.get("low_rank_dimension") is not None
            and not RotatedSpaceIntervention._warned_low_rank
        ):
            RotatedSpaceIntervention._warned_low_rank = True
            warnings.warn(
                "RotatedSpaceIntervention is a full-rank rotation; low_rank_dimension has no "
                "effect. Use LowRankRotatedSpaceIntervention for an r-dim subspace.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    def forward(self, base, source=None, subspaces=None, **kwargs):
        r, rb, rs = self._rotate_pair(base, source)
        mask = _selection(self, rb, self.width, subspaces)
        mixed = rs if mask is None else torch.where(mask, rs, rb)
        return (mixed @ r.T).to(base.dtype)


@register()
class LowRankRotatedSpaceIntervention(TrainableIntervention, DistributedRepresentationIntervention):
    """DAS in an r-dim subspace: ``W`` (D x r) has orthonormal columns and
    ``out = b + ((s - b) W) diag(sel) W^T``; ``sel`` picks latent columns (subspaces index the
    r columns, through ``subspace_partition`` when set; default all r). The component of
    ``out - b`` orthogonal to W's columns is zero. Requires ``low_rank_dimension``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width = _need_dim("LowRankRotatedSpaceIntervention", self.embed_dim)
        rank = kwargs.get("low_rank_dimension")
        if not isinstance(rank, numbers.Integral) or not 1 <= int(rank) <= self.width:
            raise ConfigError(
                f"LowRankRotatedSpaceIntervention needs low_rank_dimension in 1..{self.width} "
                f"(embed_dim), got {rank!r}"
            )
        self.low_rank_dimension = int(rank)
        self.rotate_layer = orthogonal_rotation(self.width, self.low_rank_dimension)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if source is None:
            raise ConfigError("LowRankRotatedSpaceIntervention needs a source")
        _check_width("LowRankRotatedSpaceIntervention", base, self.width)
        source = broadcast_source(source, base)
        w = self.rotate_layer.weight  # (D, r), float32
        delta = (source.to(w.dtype) - base.to(w.dtype)) @ w
        mask = _selection(self, delta, self.low_rank_dimension, subspaces)
        if mask is not None:
            delta = delta * mask
        return (base.to(w.dtype) + delta @ w.T).to(base.dtype)


@register()
class BoundlessRotatedSpaceIntervention(_Rotated):
    """Boundless DAS: rotation ``R`` and a learned boundary ``beta`` (``intervention_boundaries``,
    init 0.5) with a temperature ``T`` (init 50, annealed by the user). Soft mask over rotated
    dim ``i`` (the original's formula, the default, so folders trained with it reproduce):
    ``m_i = sigmoid(i / T) * sigmoid((clamp(beta, 1e-3, 1) * D - i) / T)``;
    ``out = ((1 - m) bR + m sR) R^T``. Quirk kept for parity: ``sigmoid(0 / T) = 0.5``, so
    ``m_0 <= 0.5`` at every temperature and the first rotated dim is never fully swapped.
    ``centred_mask=True`` uses ``i + 0.5`` instead (``m_0 -> 1`` as ``T -> 0``; the hard limit
    is "the first round(beta * D) dims"); the option is saved with the intervention. The mask
    is over the last dim and broadcasts across batch and units (works with batch > 1).
    Subspaces are ignored, as in the original."""

    def __init__(self, centred_mask: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.centred_mask = bool(centred_mask)
        self.intervention_boundaries = nn.Parameter(torch.tensor([0.5]))
        self.temperature = nn.Parameter(torch.tensor(50.0))
        self.register_buffer("intervention_population", torch.arange(self.width))

    def get_boundary_parameters(self) -> nn.Parameter:
        return self.intervention_boundaries

    def get_temperature(self) -> nn.Parameter:
        return self.temperature

    def set_temperature(self, temp: float | torch.Tensor) -> None:
        self.temperature.data = torch.as_tensor(temp, dtype=torch.float32).to(self.temperature)

    def set_intervention_boundaries(self, intervention_boundaries: float) -> None:
        """Set ``beta`` in place (the optimizer keeps tracking the same Parameter)."""
        value = torch.tensor([float(intervention_boundaries)])
        self.intervention_boundaries.data = value.to(self.intervention_boundaries)

    def mask(self) -> torch.Tensor:
        """The current soft mask ``(D,)`` over rotated dims (float32)."""
        pop = self.intervention_population.to(self.temperature.dtype)
        if self.centred_mask:
            pop = pop + 0.5
        beta = torch.clamp(self.intervention_boundaries, 1e-3, 1.0) * self.width
        t = self.temperature
        return torch.sigmoid(pop / t) * torch.sigmoid((beta - pop) / t)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        r, rb, rs = self._rotate_pair(base, source)
        m = self.mask().to(rb.device)
        return (((1.0 - m) * rb + m * rs) @ r.T).to(base.dtype)


@register()
class SigmoidMaskRotatedSpaceIntervention(_Rotated):
    """Rotation ``R`` plus a learned gate per rotated dim: ``m = sigmoid(masks / T)`` with
    ``masks`` init 100 and ``T`` init 50 (m ~ 0.88); ``out = ((1 - m) bR + m sR) R^T``.
    As in the original, ``IntervenableModel.set_temperature`` does not touch it (set
    ``temperature.data`` directly)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.masks = nn.Parameter(torch.full((self.width,), 100.0))
        self.temperature = nn.Parameter(torch.tensor(50.0))

    def get_boundary_parameters(self) -> nn.Parameter:
        return self.masks

    def get_temperature(self) -> nn.Parameter:
        return self.temperature

    def forward(self, base, source=None, subspaces=None, **kwargs):
        r, rb, rs = self._rotate_pair(base, source)
        m = torch.sigmoid(self.masks / self.temperature).to(rb.device)
        return (((1.0 - m) * rb + m * rs) @ r.T).to(base.dtype)


@register()
class PCARotatedSpaceIntervention(BasisAgnosticIntervention, DistributedRepresentationIntervention):
    """Interchange in a fitted PCA basis (not trained). ``z = ((x - mean) / std) C^T`` with
    components ``C`` (r x D); the chosen components (subspaces, else the first
    ``interchange_dim``, default all) take the source's values:
    ``out = b + ((z_s - z_b) * sel) C * std``. With r == D this equals the original's
    ``(z' C) std + mean``; with r < D the base's part outside the PCA span is kept (the
    original replaced the base by its r-dim reconstruction).

    Build with ``PCARotatedSpaceIntervention.fit(activations, n_components)``, with
    ``components=``/``mean=``/``std=`` tensors, or with the original's ``pca=`` (an object with
    ``components_``, e.g. scikit-learn's PCA) plus ``pca_mean=``/``pca_std=``."""

    init_args = ("pca", "pca_mean", "pca_std")

    def __init__(
        self,
        components: Any = None,
        mean: Any = None,
        std: Any = None,
        **kwargs: Any,
    ) -> None:
        pca = kwargs.pop("pca", None)
        mean = kwargs.pop("pca_mean", mean)
        std = kwargs.pop("pca_std", std)
        if components is None and pca is not None:
            components = pca.components_
        if components is None:  # rebuilt from a saved config: load_state_dict fills it
            if kwargs.get("embed_dim") is None:
                raise ConfigError(
                    "PCARotatedSpaceIntervention needs a fitted basis: use "
                    "PCARotatedSpaceIntervention.fit(activations, n_components) or pass "
                    "components= (r, D)"
                )
            width = int(kwargs["embed_dim"])
            components = torch.zeros(int(kwargs.get("low_rank_dimension") or width), width)
        comps = torch.as_tensor(components, dtype=torch.float32)
        if comps.dim() != 2:
            raise DimensionMismatchError(f"components must be (r, D), got {tuple(comps.shape)}")
        width = comps.shape[1]
        kwargs.setdefault("embed_dim", width)
        super().__init__(**kwargs)
        mean = torch.zeros(width) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std = torch.ones(width) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.width = width
        self.register_buffer("pca_components", comps.clone())
        self.register_buffer("pca_mean", mean.reshape(width).clone())
        self.register_buffer("pca_std", std.reshape(width).clone())

    def saved_kwargs(self) -> dict[str, Any]:
        """The rank, saved so that a loaded folder rebuilds buffers of the right shape."""
        return {"low_rank_dimension": int(self.pca_components.shape[0])}

    @classmethod
    def fit(
        cls,
        activations: torch.Tensor,
        n_components: int | None = None,
        standardize: bool = False,
        **kwargs: Any,
    ) -> PCARotatedSpaceIntervention:
        """Fit on activations ``(..., D)`` (all leading dims are samples): components are the
        top right-singular vectors of the centred (and, if ``standardize``, scaled) data."""
        x = activations.detach().reshape(-1, activations.shape[-1]).float()
        mean = x.mean(0)
        std = x.std(0).clamp_min(1e-6) if standardize else torch.ones_like(mean)
        _, _, vh = torch.linalg.svd((x - mean) / std, full_matrices=False)
        k = vh.shape[0] if n_components is None else int(n_components)
        # contiguous copies: a reloaded intervention then computes bit-identically
        comps = vh[:k].contiguous().clone()
        return cls(components=comps, mean=mean, std=std, **kwargs)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if source is None:
            raise ConfigError("PCARotatedSpaceIntervention needs a source")
        _check_width("PCARotatedSpaceIntervention", base, self.width)
        source = broadcast_source(source, base)
        c, sd = self.pca_components, self.pca_std
        if not bool(c.any()):
            raise ConfigError("PCARotatedSpaceIntervention has no fitted components yet")
        b = base.to(c.dtype)
        dz = ((source.to(device=b.device, dtype=c.dtype) - b) / sd) @ c.T  # (..., r)
        mask = _selection(self, dz, c.shape[0], subspaces)
        if mask is not None:
            dz = dz * mask
        return (b + (dz @ c) * sd).to(base.dtype)
