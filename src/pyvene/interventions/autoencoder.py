"""Interchange in the latent space of an autoencoder: a trainable ReLU autoencoder and a
JumpReLU sparse autoencoder (for pretrained SAEs, e.g. Gemma Scope)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, DimensionMismatchError
from .base import TrainableIntervention
from .registry import register
from .swapping import broadcast_source, dims_mask, subspace_dims


class AutoencoderLayer(nn.Module):
    """``latent = relu(W_e (x - b_dec) + b_e)``, ``output = W_d latent + b_dec``."""

    def __init__(self, input_dim: int, latent_dim: int, **kwargs: Any) -> None:
        super().__init__()
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)
        self.encoder = nn.Sequential(nn.Linear(self.input_dim, self.latent_dim), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(self.latent_dim, self.input_dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x - self.decoder[0].bias)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent)

    def forward(self, base: torch.Tensor, return_latent: bool = False) -> Any:
        latent = self.encode(base)
        output = self.decode(latent)
        return {"latent": latent, "output": output} if return_latent else output


def _latent_mask(
    ids: Any, latent: torch.Tensor, subspaces: Any, partition: Any
) -> torch.Tensor | None:
    """Mask over latents: per-example ``subspaces`` (latent ids) win over ``ids``
    (a list of latent ids, or None = every latent)."""
    dims = subspace_dims(subspaces, partition, latent.shape[0])
    if dims is None and ids is None:
        return None
    if dims is None:
        dims = [list(ids)] * latent.shape[0]
    return dims_mask(dims, latent)


@register()
class AutoencoderIntervention(TrainableIntervention):
    """Encode base and source with an :class:`AutoencoderLayer` (``latent_dim`` required),
    copy the chosen latents from the source, decode (the output is the reconstruction).

    Chosen latents: per-call ``subspaces`` (latent ids), else ``interchange_dim`` when it was
    set to latent ids (a list, or an int = that one latent id, as in the original), else
    every latent (the default; the original raised IndexError here)."""

    init_args = ("interchange_dim",)

    def __init__(self, **kwargs: Any) -> None:
        ids = kwargs.pop("interchange_dim", None)
        super().__init__(**kwargs)
        latent_dim = kwargs.get("latent_dim")
        if latent_dim is None or self.embed_dim is None:
            raise ConfigError(
                "AutoencoderIntervention needs latent_dim and embed_dim, e.g. "
                f"AutoencoderIntervention(embed_dim=64, latent_dim=256); got embed_dim="
                f"{self.embed_dim!r}, latent_dim={latent_dim!r}"
            )
        self.autoencoder = AutoencoderLayer(self.embed_dim, int(latent_dim))
        self.latent_ids: list[int] | None = None
        if ids is not None:
            self.set_interchange_dim(ids)

    def set_interchange_dim(self, interchange_dim: int | list[int] | None) -> None:
        """Latent ids to interchange (an int is one latent id, None = every latent)."""
        if isinstance(interchange_dim, torch.Tensor):
            interchange_dim = interchange_dim.tolist()
        if isinstance(interchange_dim, int):
            interchange_dim = [interchange_dim]
        self.interchange_dim = interchange_dim
        self.latent_ids = None if interchange_dim is None else [int(i) for i in interchange_dim]

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if source is None:
            raise ConfigError("AutoencoderIntervention needs a source")
        if base.shape[-1] != self.embed_dim:
            raise DimensionMismatchError(
                f"AutoencoderIntervention was built for width {self.embed_dim} (embed_dim) but "
                f"got shape {tuple(base.shape)}"
            )
        w = self.autoencoder.decoder[0].weight
        source = broadcast_source(source, base)
        zb = self.autoencoder.encode(base.to(w.dtype))
        zs = self.autoencoder.encode(source.to(device=w.device, dtype=w.dtype))
        mask = _latent_mask(self.latent_ids, zb, subspaces, self.subspace_partition)
        z = zs if mask is None else torch.where(mask, zs, zb)
        return self.autoencoder.decode(z).to(base.dtype)


@register()
class JumpReLUAutoencoderIntervention(TrainableIntervention):
    """A JumpReLU SAE (``low_rank_dimension`` = latent width r; weights are zeros, meant to be
    loaded from a pretrained SAE): ``pre = x W_enc + b_enc``, ``a = 1[pre > threshold] *
    relu(pre)``, ``decode(a) = a W_dec + b_dec``. Acts per position (``keep_last_dim``).
    The chosen latents (subspaces = latent ids, else the first ``interchange_dim`` once set,
    else all) take the source's values and the output is the reconstruction of the
    intervened latents (so the base becomes its SAE reconstruction, as in the original)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["keep_last_dim"] = True
        super().__init__(**kwargs)
        rank = kwargs.get("low_rank_dimension")
        if rank is None or self.embed_dim is None:
            raise ConfigError(
                "JumpReLUAutoencoderIntervention needs embed_dim and low_rank_dimension (the "
                f"SAE width); got embed_dim={self.embed_dim!r}, low_rank_dimension={rank!r}"
            )
        units = int(kwargs.get("max_number_of_units") or 1)
        d = self.embed_dim // units if self.embed_dim % units == 0 else self.embed_dim
        r = int(rank)
        self.width, self.low_rank_dimension = d, r
        self.interchange_dim = None  # default: every latent
        self.W_enc = nn.Parameter(torch.zeros(d, r))
        self.W_dec = nn.Parameter(torch.zeros(r, d))
        self.threshold = nn.Parameter(torch.zeros(r))
        self.b_enc = nn.Parameter(torch.zeros(r))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = x @ self.W_enc + self.b_enc
        return (pre > self.threshold) * torch.relu(pre)

    def decode(self, acts: torch.Tensor) -> torch.Tensor:
        return acts @ self.W_dec + self.b_dec

    def forward(self, base, source=None, subspaces=None, **kwargs):
        if source is None:
            raise ConfigError("JumpReLUAutoencoderIntervention needs a source")
        if base.shape[-1] != self.width:
            raise DimensionMismatchError(
                f"JumpReLUAutoencoderIntervention expects width {self.width}, got shape "
                f"{tuple(base.shape)}"
            )
        dtype = self.W_enc.dtype
        source = broadcast_source(source, base)
        zb = self.encode(base.to(dtype))
        zs = self.encode(source.to(device=base.device, dtype=dtype))
        k = self.interchange_dim
        ids = None
        if isinstance(k, (list, tuple)):
            ids = list(k)
        elif k is not None:
            ids = list(range(min(int(k), self.low_rank_dimension)))
        mask = _latent_mask(ids, zb, subspaces, self.subspace_partition)
        z = zs if mask is None else torch.where(mask, zs, zb)
        return self.decode(z).to(base.dtype)
