"""LoRAIntervention: a trainable low-rank adapter on a hooked module, ``out = base + B(A(x))``
with ``x`` the module's input (a LoRA on the whole module, placed by a representation)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from ..errors import ConfigError, DimensionMismatchError
from .base import TrainableIntervention
from .registry import register


@register()
class LoRAIntervention(TrainableIntervention):
    """``out = base + scale * B(A(x))`` per position, where ``x`` is the hooked module's input at
    the same units (the engine passes it as ``args=`` because ``needs_module_input`` is set; on
    an input hook ``x`` is the base itself). ``A``: ``input_dim -> r`` (Kaiming init), ``B``:
    ``r -> D`` initialised to zero, so a fresh adapter is the identity.

    ``low_rank_dimension`` = r (required). ``input_dim`` = width of the module's input; it
    defaults to the output width (true for block/mlp/attention outputs; pass it for modules
    that change the width, e.g. ``mlp_activation``). ``alpha``: ``scale = alpha / r``
    (default ``alpha = r``, scale 1). Needs no source; ``keep_last_dim`` is always on."""

    is_source_constant: ClassVar[bool] = True
    needs_module_input: ClassVar[bool] = True

    def __init__(
        self, input_dim: int | None = None, alpha: float | None = None, **kwargs: Any
    ) -> None:
        kwargs["keep_last_dim"] = True
        super().__init__(**kwargs)
        rank = kwargs.get("low_rank_dimension")
        if rank is None or self.embed_dim is None:
            raise ConfigError(
                "LoRAIntervention needs low_rank_dimension (the rank) and embed_dim (the output "
                f"width); got low_rank_dimension={rank!r}, embed_dim={self.embed_dim!r}"
            )
        units = int(kwargs.get("max_number_of_units") or 1)
        out_dim = self.embed_dim // units if self.embed_dim % units == 0 else self.embed_dim
        self.rank = int(rank)
        self.input_dim = out_dim if input_dim is None else int(input_dim)
        self.scale = (self.rank if alpha is None else float(alpha)) / self.rank
        self.lora_A = nn.Linear(self.input_dim, self.rank, bias=False)
        self.lora_B = nn.Linear(self.rank, out_dim, bias=False)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        x = kwargs.get("args")
        x = base if x is None else x
        if isinstance(x, (tuple, list)):
            x = x[0]
        if x.shape[-1] != self.input_dim:
            raise DimensionMismatchError(
                f"LoRAIntervention was built for module inputs of width {self.input_dim} but "
                f"got {tuple(x.shape)}; pass input_dim={x.shape[-1]}"
            )
        w = self.lora_A.weight
        delta = self.lora_B(self.lora_A(x.to(device=w.device, dtype=w.dtype))) * self.scale
        return (base.to(w.dtype) + delta).to(base.dtype)
