"""The intervention contract, the base classes of the original API, the name registry used by
saved configs, and the swap primitive (interchange / add / subtract / collect on chosen dims).

Contract: ``forward(base, source=None, subspaces=None, **kwargs) -> Tensor`` on gathered
activations (``[batch, units, dim]``, ``[batch, heads, positions, head_dim]`` or
``[batch, dim]``). Class attributes tell the engine what it needs to know; the engine never
checks concrete classes.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError, DimensionMismatchError, LocationError, choices_message

_REGISTRY: dict[str, type] = {}


def register(name: str | type | None = None):
    """Class decorator: make an intervention loadable by name from a saved config. Use as
    ``@register`` (the class name) or ``@register("name")``."""

    def wrap(cls: type) -> type:
        key = name if isinstance(name, str) else cls.__name__
        cls.registered_name = key
        _REGISTRY[key] = cls
        return cls

    return wrap(name) if isinstance(name, type) else wrap


def registered_interventions() -> dict[str, type]:
    """Name -> class of every registered intervention."""
    return dict(_REGISTRY)


def get_intervention_class(name: str | type) -> type:
    """Look a class up by registered name. Accepts the original's "<class 'a.b.Name'>" form.
    Never imports anything named by the string."""
    if isinstance(name, type):
        return name
    short = str(name).strip()
    if short.startswith("<class '") and short.endswith("'>"):
        short = short[len("<class '") : -2]
    short = short.rsplit(".", 1)[-1]
    if short not in _REGISTRY:
        raise ConfigError(choices_message("intervention", name, sorted(_REGISTRY)))
    return _REGISTRY[short]


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


def expand_partition(partition: Any) -> list[list[int]] | None:
    """[[0, 2], [2, 4]] -> [[0, 1], [2, 3]]; explicit index lists are kept.
    As in the original, a 2-element int list is read as a [start, end) range."""
    if partition is None:
        return None
    out = []
    for part in partition:
        part = list(part)
        if len(part) == 2 and all(isinstance(p, int) for p in part):
            out.append(list(range(part[0], part[1])))
        else:
            out.append([int(p) for p in part])
    return out


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
    basis_agnostic: ClassVar[bool] = False
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
            from .contract import contract

            return contract(self).distributed
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
    trainable: ClassVar[bool] = True

    def tie_weight(self, other: Intervention) -> None:  # original API, no-op
        pass


class ConstantSourceIntervention(Intervention):
    is_source_constant: ClassVar[bool] = True


class SourcelessIntervention(Intervention):
    is_source_constant: ClassVar[bool] = True


class BasisAgnosticIntervention(Intervention):
    basis_agnostic: ClassVar[bool] = True


class SharedWeightsTrainableIntervention(TrainableIntervention):
    shared_weights: ClassVar[bool] = True


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


def broadcast_source(source: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Broadcast a source (e.g. a (D,) vector) to the base slice's shape, or raise."""
    source = source.to(device=base.device, dtype=base.dtype)
    if source.shape == base.shape:
        return source
    try:
        return torch.broadcast_to(source, base.shape)
    except RuntimeError:
        pass
    try:
        return source.reshape([1] * (base.dim() - 1) + [base.shape[-1]]).expand(base.shape)
    except RuntimeError as err:
        hint = ""
        if source.dim() == base.dim() >= 2 and source.shape[0] not in (1, base.shape[0]):
            hint = (
                f"; the source run has {source.shape[0]} examples and the base "
                f"{base.shape[0]}: give sources with the base's batch size (or 1)"
            )
        elif source.dim() == base.dim() >= 3 and source.shape[-1] == base.shape[-1]:
            hint = (
                "; without unit_locations the whole tensor is swapped, so source and base "
                "inputs need the same length: pick positions with unit_locations="
                "{'sources->base': (source_positions, base_positions)} otherwise"
            )
        raise DimensionMismatchError(
            f"source with shape {tuple(source.shape)} cannot be broadcasted into base with shape "
            f"{tuple(base.shape)}; a source must match the base slice or be a "
            f"({base.shape[-1]},) vector{hint}"
        ) from err


def subspace_dims(
    subspaces: Any, partition: list[list[int]] | None, batch: int
) -> list[list[int]] | None:
    """Per-example lists of feature dims from per-call ``subspaces`` (partition indices when a
    partition is set, raw dims otherwise). A single list applies to every example."""
    if subspaces is None:
        return None
    if isinstance(subspaces, torch.Tensor):
        subspaces = subspaces.tolist()
    if _is_int(subspaces):
        subspaces = [[subspaces]]
    elif isinstance(subspaces, (list, tuple)) and subspaces and all(map(_is_int, subspaces)):
        subspaces = [list(subspaces)]
    if not isinstance(subspaces, (list, tuple)) or not all(
        _is_int(s) or (isinstance(s, (list, tuple)) and all(map(_is_int, s))) for s in subspaces
    ):
        raise LocationError(
            f"subspaces entry {subspaces!r} is not a list of ints per example; give e.g. "
            "[[0, 1]] (dims 0 and 1 of every example) or one list per example"
        )
    rows = [list(s) if isinstance(s, (list, tuple)) else [int(s)] for s in subspaces]
    if len(rows) == 1 and batch != 1:
        rows = rows * batch
    if len(rows) != batch:
        raise LocationError(
            f"subspaces has {len(rows)} per-example entries for a batch of {batch}; give one "
            "list for all examples or one per example"
        )
    if partition is not None:
        bad = [p for row in rows for p in row if not -len(partition) <= p < len(partition)]
        if bad:
            raise LocationError(
                f"subspaces index {bad[0]} is out of range: with subspace_partition set, "
                f"subspaces pick partition parts, and it has {len(partition)} "
                f"(0..{len(partition) - 1}): {partition}"
            )
        rows = [[d for p in row for d in partition[p]] for row in rows]
    return rows


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_dims(dims: list[list[int]], width: int) -> None:
    """Raise :class:`LocationError` naming the first dim outside ``-width..width-1``."""
    bad = [d for row in dims for d in row if not -width <= d < width]
    if bad:
        raise LocationError(
            f"subspaces dim {bad[0]} is out of range for width {width} (valid 0..{width - 1}); "
            "subspaces index the features of the intervened vector"
        )


def dims_mask(dims: list[list[int]], base: torch.Tensor) -> torch.Tensor:
    """Boolean mask broadcastable to ``base`` with True at each example's dims."""
    batch, width = base.shape[0], base.shape[-1]
    check_dims(dims, width)
    mask = torch.zeros(batch, width, dtype=torch.bool, device=base.device)
    for_rows = [(b, d) for b, row in enumerate(dims) for d in row]
    if for_rows:
        idx = torch.tensor(for_rows, device=base.device)
        mask[idx[:, 0], idx[:, 1]] = True
    return mask.view(batch, *([1] * (base.dim() - 2)), width)


def _do_intervention_by_swap(
    base: torch.Tensor,
    source: torch.Tensor | None,
    mode: str = "interchange",
    interchange_dim: Any = None,
    subspaces: Any = None,
    subspace_partition: Any = None,
    use_fast: bool = False,
) -> torch.Tensor:
    """Interchange / add / subtract the source into the base on chosen dims (out of place), or
    return the chosen dims ('collect'). Dims: per-example ``subspaces`` if given, else the
    first ``interchange_dim`` features, else all. ``subspace_partition`` is the raw form
    (``[[0, 2], [2, 4]]`` ranges or explicit index lists)."""
    return swap(
        base,
        source,
        mode,
        interchange_dim,
        subspaces,
        expand_partition(subspace_partition),
        use_fast,
    )


def swap(
    base: torch.Tensor,
    source: torch.Tensor | None,
    mode: str,
    interchange_dim: Any,
    subspaces: Any,
    partition: list[list[int]] | None,
    use_fast: bool = False,
) -> torch.Tensor:
    """:func:`_do_intervention_by_swap` with an already expanded partition."""
    modes = ("interchange", "add", "subtract", "collect")
    if mode not in modes:
        raise ConfigError(choices_message("swap mode", mode, modes))
    if mode == "collect":
        if source is not None:
            raise ConfigError("collect mode takes no source")
    elif source is None:
        raise ConfigError(f"{mode} needs a source; got None")
    else:
        source = broadcast_source(source, base)
    dims = subspace_dims(subspaces, partition, base.shape[0])
    if dims is not None and use_fast:
        dims = [dims[0]] * base.shape[0]
    if mode == "collect":
        if dims is None:
            return base if interchange_dim is None else base[..., : _as_int(interchange_dim)]
        check_dims(dims, base.shape[-1])
        dims = [[d % base.shape[-1] for d in row] for row in dims]  # torch.gather: no negatives
        if any(row != dims[0] for row in dims):
            if len({len(r) for r in dims}) != 1:
                raise DimensionMismatchError("collect with ragged per-example subspaces")
            idx = torch.tensor(dims, device=base.device)
            idx = idx.view(base.shape[0], *([1] * (base.dim() - 2)), -1)
            return torch.gather(base, -1, idx.expand(*base.shape[:-1], idx.shape[-1]))
        return base[..., dims[0]]
    if dims is None:
        k = base.shape[-1] if interchange_dim is None else _as_int(interchange_dim)
        if k >= base.shape[-1]:
            mask = None
        else:
            mask = torch.zeros(base.shape[-1], dtype=torch.bool, device=base.device)
            mask[:k] = True
    else:
        mask = dims_mask(dims, base)
    if mode == "interchange":
        return source if mask is None else torch.where(mask, source, base)
    delta = source if mode == "add" else -source
    return base + (delta if mask is None else delta * mask)


def _as_int(x: Any) -> int:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return int(x.item())
    if isinstance(x, (list, tuple)):
        raise ConfigError("interchange_dim as a list of dims: pass them as subspaces instead")
    if not _is_int(x) or x < 0:
        raise ConfigError(
            f"interchange_dim {x!r} is not a non-negative int (the number of leading dims to "
            "swap); use set_interchange_dim(k) with an int, or pass subspaces"
        )
    return int(x)
