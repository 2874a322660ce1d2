"""The intervention contract and the base classes of the original API.

The rule that reads a declared flag (:func:`declared_flag`) lives here, beside the classes it
walks; :mod:`.contract` builds the engine's :class:`~.contract.Contract` from it (contract
imports base, never the reverse).

Contract: ``forward(base, source=None, subspaces=None, **kwargs) -> Tensor`` on gathered
activations (``[batch, units, dim]``, ``[batch, heads, positions, head_dim]`` or
``[batch, dim]``). Class attributes tell the engine what it needs to know; the engine never
checks concrete classes. The name registry lives in :mod:`.registry` and the swap primitive in
:mod:`.swapping`; both are re-exported here, where they were first defined.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError, choices_message
from .registry import get_intervention_class as get_intervention_class
from .registry import register as register
from .registry import registered_interventions as registered_interventions
from .swapping import broadcast_source as broadcast_source
from .swapping import check_dims as check_dims
from .swapping import dims_mask as dims_mask
from .swapping import do_intervention_by_swap as _do_intervention_by_swap
from .swapping import expand_partition as expand_partition
from .swapping import subspace_dims as subspace_dims
from .swapping import swap as swap


def __getattr__(name: str) -> Any:
    # InterventionOutput subclasses transformers' ModelOutput: defined in pyvene.outputs and
    # imported on first use, so that importing the interventions never imports transformers.
    if name == "InterventionOutput":
        from ..outputs import InterventionOutput

        return InterventionOutput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def unwrap_output(out: Any) -> tuple[Any, bool]:
    """``(out.output, True)`` for an ``InterventionOutput``, else ``(out, False)``. Cheap for
    tensors: transformers is imported only when an intervention returns a mapping."""
    if not isinstance(out, dict):  # tensors, None; ModelOutput is a dict subclass
        return out, False
    from ..outputs import InterventionOutput

    if isinstance(out, InterventionOutput):
        return out.output, True
    return out, False


# Constructor arguments every intervention understands: the representation's fields (the
# engine passes them all, as the original does) and the base class's own options.
BASE_INIT_ARGS = frozenset(
    {
        "layer", "component", "unit", "max_number_of_units", "low_rank_dimension",
        "intervention_type", "intervention", "subspace_partition", "group_key",
        "intervention_link_key", "moe_key", "source_representation",
        "hidden_source_representation", "latent_dim", "embed_dim", "keep_last_dim", "use_fast",
    }
)  # fmt: skip


class Intervention(nn.Module):
    """Base of every intervention.

    Typed class attributes declare the contract (read only through
    :func:`pyvene.interventions.contract.contract`): ``trainable`` (optimized and saved),
    ``is_source_constant`` (runs without a source run), ``is_repr_distributed`` (set by the
    Localist/Distributed mixins: whether units are flattened into one vector), ``is_collect``,
    ``source_from_input``, ``needs_module_input``. ``keep_last_dim`` (a constructor argument)
    turns flattening off. The keyword arguments a caller passed to the constructor are kept
    (``ctor_kwargs``) so that saving records them and loading rebuilds the same object.
    """

    trainable: ClassVar[bool] = False
    is_source_constant: ClassVar[bool] = False
    is_collect: ClassVar[bool] = False
    source_from_input: ClassVar[bool] = False
    needs_module_input: ClassVar[bool] = False
    registered_name: ClassVar[str] = "Intervention"
    init_args: ClassVar[tuple[str, ...]] = ()  # extra keyword arguments a class accepts

    def __new__(cls, *args: Any, **kwargs: Any) -> Intervention:
        self = super().__new__(cls)
        object.__setattr__(self, "ctor_kwargs", dict(kwargs))
        return self

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        _check_init_args(type(self), getattr(self, "ctor_kwargs", kwargs))
        self.keep_last_dim = bool(kwargs.get("keep_last_dim", False))
        self.use_fast = bool(kwargs.get("use_fast", False))
        self.subspace_partition = expand_partition(kwargs.get("subspace_partition"))
        embed_dim = kwargs.get("embed_dim")
        self.embed_dim = None if embed_dim is None else int(embed_dim)
        self.interchange_dim = self.embed_dim
        source = kwargs.get("source_representation")
        if source is not None:
            self.set_source_representation(source)
        elif kwargs.get("hidden_source_representation"):
            self.is_source_constant = True

    def __getattr__(self, name: str) -> Any:
        if name == "is_repr_distributed":  # the original's attribute, decided by the mixins
            return declared_flag(self, "is_repr_distributed", REPR_MIXINS, True)
        return super().__getattr__(name)

    # -- original API -----------------------------------------------------------------------
    def set_source_representation(self, source: torch.Tensor) -> None:
        """Use ``source`` as a constant source (a buffer saved with the intervention)."""
        self.register_buffer("source_representation", torch.as_tensor(source).detach().clone())
        self.is_source_constant = True

    def set_interchange_dim(self, interchange_dim: int | list[int]) -> None:
        self.interchange_dim = interchange_dim

    def __getitem__(self, index: int) -> Intervention:
        """``interventions[key][0]`` (the pre-2025 tuple form) returns the intervention."""
        if index == 0:
            return self
        raise IndexError(f"intervention index {index}: only [0] is supported (old tuple form)")

    def swap(
        self, base: torch.Tensor, source: torch.Tensor | None, mode: str, subspaces: Any
    ) -> torch.Tensor:
        """The swap primitive with this intervention's interchange_dim, partition, use_fast."""
        return swap(
            base, source, mode, self.interchange_dim, subspaces, self.subspace_partition,
            self.use_fast,
        )  # fmt: skip

    def constant_source(self) -> torch.Tensor | None:
        return getattr(self, "source_representation", None)

    def extra_repr(self) -> str:
        return "" if self.embed_dim is None else f"embed_dim={self.embed_dim}"

    def __str__(self) -> str:
        return f"{type(self).__name__}()"


def accepted_init_args(cls: type) -> frozenset[str] | None:
    """Keyword arguments ``cls`` accepts: None when any ``__init__`` in its MRO outside pyvene
    takes ``**kwargs`` it may consume (a client class), else the union of named parameters,
    declared ``init_args`` and :data:`BASE_INIT_ARGS`."""
    names = set(BASE_INIT_ARGS)
    for klass in cls.__mro__:
        names.update(klass.__dict__.get("init_args", ()))
        init = klass.__dict__.get("__init__")
        if init is None or klass in (nn.Module, object):
            continue
        params = inspect.signature(init).parameters.values()
        if not klass.__module__.startswith("pyvene.") and any(
            p.kind is p.VAR_KEYWORD for p in params
        ):
            return None
        names.update(p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))
    names.discard("self")
    return frozenset(names)


def _check_init_args(cls: type, kwargs: dict[str, Any]) -> None:
    accepted = accepted_init_args(cls)
    if accepted is None:
        return
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            choices_message(f"{cls.__name__} argument", unknown[0], sorted(accepted))
            + " (representation fields, embed_dim, keep_last_dim, use_fast and the class's own "
            "options are accepted)"
        )


class TrainableIntervention(Intervention):
    """Base of interventions with parameters: optimized by training and saved with the model."""

    trainable: ClassVar[bool] = True

    def tie_weight(self, other: Intervention) -> None:
        """Original-API placeholder: does nothing, as in the original (a hook for subclasses
        to share weights with a linked intervention; nothing in pyvene calls it)."""


class ConstantSourceIntervention(Intervention):
    """Base of interventions that need no source run (their source is a constant or none)."""

    is_source_constant: ClassVar[bool] = True


class SourcelessIntervention(Intervention):
    """Original-API name for an intervention that runs without a source (same contract as
    :class:`ConstantSourceIntervention`)."""

    is_source_constant: ClassVar[bool] = True


class BasisAgnosticIntervention(Intervention):
    """Original-API placeholder base, kept so client classes can subclass it. The original
    set a ``basis_agnostic`` flag on it that nothing read; the engine treats it as a plain
    :class:`Intervention`."""


class SharedWeightsTrainableIntervention(TrainableIntervention):
    """Original-API placeholder base, kept so client classes can subclass it. The original
    set a ``shared_weights`` flag on it that nothing read; trains like
    :class:`TrainableIntervention`."""


class LocalistRepresentationIntervention(nn.Module):
    """Mixin: acts per unit on the last dimension, so the engine never flattens units. Its
    ``__init__`` is cooperative (passes every argument on), in any base order."""

    is_repr_distributed: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)


class DistributedRepresentationIntervention(nn.Module):
    """Mixin: units are flattened into one vector of ``embed_dim`` before the call."""

    is_repr_distributed: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)


# The contract's rule for a declared flag. The original's mixins decide wherever they sit in the
# MRO; the generic bases only supply defaults; a value set on the instance wins over both.
GENERIC_BASES: tuple[type, ...] = (
    Intervention,
    TrainableIntervention,
    ConstantSourceIntervention,
    SourcelessIntervention,
    BasisAgnosticIntervention,
    SharedWeightsTrainableIntervention,
    nn.Module,
    object,
)
# is_repr_distributed, as the Localist / Distributed mixins decide it.
REPR_MIXINS: dict[type, bool] = {
    LocalistRepresentationIntervention: False,
    DistributedRepresentationIntervention: True,
}


def declared_flag(inter: Any, name: str, mixins: dict[type, bool], default: bool) -> bool:
    """The value ``inter`` (an instance or a class) declares for the flag ``name``: its own
    instance value, else the first class in its MRO that is one of ``mixins`` (its value) or
    that sets ``name`` itself and is not one of :data:`GENERIC_BASES`, else ``default``."""
    own = {} if isinstance(inter, type) else getattr(inter, "__dict__", {})
    if name in own:
        return bool(own[name])
    for klass in (inter if isinstance(inter, type) else type(inter)).__mro__:
        if klass in mixins:
            return mixins[klass]
        if klass in GENERIC_BASES:
            continue
        if name in klass.__dict__:
            return bool(klass.__dict__[name])
    return default


__all__ = [
    "BASE_INIT_ARGS",
    "GENERIC_BASES",
    "REPR_MIXINS",
    "BasisAgnosticIntervention",
    "ConstantSourceIntervention",
    "DistributedRepresentationIntervention",
    "Intervention",
    "LocalistRepresentationIntervention",
    "SharedWeightsTrainableIntervention",
    "SourcelessIntervention",
    "TrainableIntervention",
    "_do_intervention_by_swap",
    "accepted_init_args",
    "broadcast_source",
    "check_dims",
    "declared_flag",
    "dims_mask",
    "expand_partition",
    "get_intervention_class",
    "register",
    "registered_interventions",
    "subspace_dims",
    "swap",
    "unwrap_output",
]
