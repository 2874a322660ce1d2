"""The intervention contract, decided in one place: what the engine needs to know about an
intervention (needs a source? collects? flattened units or per unit? reads the module input?
trainable?).

Our classes declare typed class attributes (``is_collect: ClassVar[bool] = True``). Client
classes (pyreft's, the original tutorials') are classified by ``isinstance`` against the
original's mixins (``ConstantSourceIntervention``, ``SourcelessIntervention``,
``TrainableIntervention``, ``LocalistRepresentationIntervention``,
``DistributedRepresentationIntervention``), whatever their base order: the first class in the
MRO that is one of those mixins, or that declares the attribute itself, decides; the generic
bases (``Intervention`` ...) only supply defaults. A value set on the instance
(``self.is_source_constant = True``, ``keep_last_dim``) wins over both. That rule is
:func:`.base.declared_flag` (beside the classes it walks, so base never imports this module).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ..errors import ConfigError, choices_message
from . import base as _b


@dataclass(frozen=True)
class Contract:
    """What one intervention declares (see the module docstring for how it is decided)."""

    source_constant: bool  # runs without a source run (constant / sourceless / collect)
    collects: bool  # records the activation, returns it in the collected list
    distributed: bool  # the original's is_repr_distributed
    keep_last_dim: bool  # sees (B, U, D) even when distributed
    source_from_input: bool  # the source run is read at the module input (Skip)
    module_input: bool  # also gets the hooked module's input as ``args=`` (LoRA)
    trainable: bool  # optimized, counted and saved by save_intervention

    @property
    def needs_source(self) -> bool:
        return not (self.source_constant or self.collects)

    @property
    def flatten(self) -> bool:
        """Units are flattened into one vector before the call (the original's rule)."""
        return self.distributed and not self.keep_last_dim and not self.collects


_WRAPPERS = (DataParallel, DistributedDataParallel)


def contract(inter: Any) -> Contract:
    """The :class:`Contract` of ``inter``: an intervention instance, ours or a client's (or a
    class, for what its class declares)."""
    while isinstance(inter, _WRAPPERS):  # interventions[key] = DistributedDataParallel(iv)
        inter = inter.module
    klass = inter if isinstance(inter, type) else type(inter)
    ours = issubclass(klass, _b.Intervention)
    constant = _b.declared_flag(
        inter,
        "is_source_constant",
        {_b.ConstantSourceIntervention: True, _b.SourcelessIntervention: True},
        False,
    )
    distributed = _b.declared_flag(
        inter,
        "is_repr_distributed",
        _b.REPR_MIXINS,
        ours,  # the original flattens every Intervention that is not Localist
    )
    return Contract(
        source_constant=constant,
        collects=_b.declared_flag(inter, "is_collect", {}, False),
        distributed=distributed,
        keep_last_dim=not isinstance(inter, type) and bool(getattr(inter, "keep_last_dim", False)),
        source_from_input=_b.declared_flag(inter, "source_from_input", {}, False),
        module_input=_b.declared_flag(inter, "needs_module_input", {}, False),
        trainable=_b.declared_flag(inter, "trainable", {_b.TrainableIntervention: True}, False),
    )


def construct(
    cls: type,
    rep_fields: dict[str, Any],
    embed_dim: int | None,
    saved: dict[str, Any] | None = None,
) -> nn.Module:
    """Build ``cls`` the one way config, instance and saved folder share: the representation's
    fields plus ``embed_dim`` (as the original passes them), then ``saved`` constructor
    arguments. Only arguments the constructor accepts are passed: all of them when it takes
    ``**kwargs``, else its named parameters; a saved argument it does not take is refused."""
    kwargs = dict(rep_fields)
    kwargs.update(embed_dim=embed_dim, use_fast=False)
    saved = dict(saved or {})
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        named = [n for n, p in params.items() if n != "self" and p.kind is not p.VAR_POSITIONAL]
        kwargs = {k: v for k, v in kwargs.items() if k in named}
        unknown = sorted(set(saved) - set(named))
        if unknown:
            raise ConfigError(choices_message(f"{cls.__name__} argument", unknown[0], named))
    kwargs.update(saved)
    return cls(**kwargs)


# Constructor arguments the engine supplies again on load (from the representation and the
# site), so a saved entry does not repeat them.
ENGINE_ARGS = frozenset(
    {
        "layer", "component", "unit", "max_number_of_units", "intervention_type", "intervention",
        "group_key", "intervention_link_key", "moe_key", "source_representation",
        "hidden_source_representation", "use_fast", "embed_dim",
    }
)  # fmt: skip


def caller_kwargs(inter: Any) -> dict[str, Any]:
    """The keyword arguments the caller gave the constructor, minus :data:`ENGINE_ARGS`, plus
    what the class's ``saved_kwargs()`` adds (arguments it derived, e.g. PCA's rank)."""
    given = dict(getattr(inter, "__dict__", {}).get("ctor_kwargs") or {})
    extra = getattr(inter, "saved_kwargs", None)
    if callable(extra):
        given.update(extra())
    return {k: v for k, v in given.items() if k not in ENGINE_ARGS and v is not None}
