"""The original ``pyvene.models.modeling_utils`` helpers that users' tests call, given the
semantics of our engine (``pyvene.gather``) and registries (``pv.type_to_module_mapping``).

``from pyvene.models.modeling_utils import *`` brings ``gather_neurons``, ``scatter_neurons``,
``output_to_subcomponent``, ``do_intervention``, ``getattr_for_torch_module``,
``get_dimension_by_component``, ``get_module_hook``, ``HandlerList``, ``LambdaIntervention``,
the registries, ``torch`` and ``hf_models`` (= ``transformers.models``).

Shapes: "pos" / "h" gather along dim 1 of ``(B, S, D)`` / ``(B, H, S, Dh)`` into ``(B, U, ...)``;
"h.pos" takes ``(B, H, S, Dh)`` and returns ``(B, Hs, Ps, Dh)``. ``scatter_neurons`` takes the
raw hooked tensor and the gathered-shape replacement, and writes in place.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers.models as hf_models
from torch import nn

from ..engine import CallState, apply_intervention
from ..errors import LocationError
from ..families import HookSite, resolve_site
from ..gather import Units, gather, scatter
from ..interventions.basic import LambdaIntervention
from .constants import CONST_INPUT_HOOK, CONST_OUTPUT_HOOK
from .gru.modelings_gru import GRUForClassification, GRULMHeadModel, GRUModel
from .legacy_mapping import (
    entry_layout,
    evaluate_dimension,
    type_to_dimension_mapping,
    type_to_module_mapping,
)
from .mlp.modelings_mlp import MLPForClassification, MLPModel

_UNITS = ("pos", "h", "h.pos", "t")


class UnsupportedUnitError(LocationError, AssertionError):
    """A unit other than pos, h, h.pos, t (an AssertionError too, as in the original)."""


def getattr_for_torch_module(model: Any, parameter_name: str) -> Any:
    """``"h[0].mlp"`` / ``"text_config.hidden_size"`` -> that attribute, walking ``name[i]``."""
    current = model
    for part in parameter_name.split("."):
        name, _, index = part.partition("[")
        current = getattr(current, name)
        if index:
            current = current[int(index.rstrip("]"))]
    return current


def get_dimension_by_component(model_type: type, model_config: Any, component: str) -> int | None:
    """Width of ``component`` for model class ``model_type`` from
    ``pv.type_to_dimension_mapping`` (None when it has no entry)."""
    return evaluate_dimension(model_type, model_config, component)


def _site(model_type: type, model_config: Any, component: str) -> HookSite:
    layout = entry_layout(model_type, model_config, component) or (None, None, None)
    return HookSite(None, component, "output", component, None, *layout)  # type: ignore[arg-type]


def output_to_subcomponent(
    output: torch.Tensor, component: str, model_type: type, model_config: Any
) -> torch.Tensor:
    """The part of a hooked tensor ``component`` names: its fused slice, split into
    ``(B, H, S, Dh)`` for head components; unchanged when the class has no entry for it."""
    site = _site(model_type, model_config, component)
    if site.part is None and site.heads is None:
        return output
    out = gather(output, site, None)
    return out.squeeze(1) if output.dim() == 2 and not site.is_head else out


def _check_unit(unit: str) -> None:
    if unit not in _UNITS:
        raise UnsupportedUnitError(
            f"Not Implemented Gathering with Unit = {unit}; valid units: {', '.join(_UNITS)}"
        )


def _units(rows: Any, what: str, fill_missing: bool = False) -> Units:
    if isinstance(rows, torch.Tensor):
        rows = rows.tolist()
    if fill_missing:  # the original gathers row 0 for examples without locations
        rows = [r if r else [0] for r in rows]
    index = torch.as_tensor(rows, dtype=torch.long)
    if index.dim() != 2 or index.numel() == 0:
        raise LocationError(
            f"{what}: expected one list of indices per example, e.g. [[0, 1]] * batch_size, "
            f"got {rows!r}"
        )
    return Units(index, None, (int(index.min()), int(index.max())))


def _head_pos_units(locations: Any) -> Units:
    if not (isinstance(locations, (tuple, list)) and len(locations) == 2):
        raise LocationError(
            f"unit 'h.pos' takes (heads_per_example, positions_per_example), got {locations!r}"
        )
    heads, pos = _units(locations[0], "h.pos heads"), _units(locations[1], "h.pos positions")
    return Units(heads.index, pos.index, heads.bounds, pos.bounds)


def gather_neurons(
    tensor_input: torch.Tensor, unit: str, unit_locations_as_list: Any
) -> torch.Tensor:
    """Select units: "pos" / "h" along dim 1 (``(B, U, ...)``), "h.pos" heads then positions
    of a ``(B, H, S, Dh)`` tensor (``(B, Hs, Ps, Dh)``); "t" returns the input."""
    _check_unit(unit)
    if unit == "t":
        return tensor_input
    if unit == "h.pos":
        if tensor_input.dim() != 4:
            raise LocationError(
                f"unit 'h.pos' gathers from (batch, heads, seq, head_dim), got shape "
                f"{tuple(tensor_input.shape)}"
            )
        heads = tensor_input.shape[1]
        raw = tensor_input.permute(0, 2, 1, 3).flatten(2)
        site = HookSite(None, "h.pos", "output", "h.pos", None, None, None, heads)  # type: ignore[arg-type]
        return gather(raw, site, _head_pos_units(unit_locations_as_list))
    site = HookSite(None, unit, "output", unit, None, None)  # type: ignore[arg-type]
    return gather(tensor_input, site, _units(unit_locations_as_list, unit, fill_missing=True))


def scatter_neurons(
    tensor_input: torch.Tensor,
    replacing_tensor_input: torch.Tensor,
    component: str,
    unit: str,
    unit_locations_as_list: Any,
    model_type: type,
    model_config: Any,
    use_fast: bool = False,
) -> torch.Tensor:
    """Write ``replacing_tensor_input`` (the gathered shape: ``(B, U, D)`` for "pos",
    ``(B, U, S, Dh)`` for "h", ``(B, Hs, Ps, Dh)`` for "h.pos", ``(B, D)`` for "t") into the
    raw hooked ``tensor_input`` at the units of ``component``, in place; returns it. Examples
    whose locations are None are left alone. ``use_fast`` has no effect."""
    _check_unit(unit)
    site = _site(model_type, model_config, component)
    value = replacing_tensor_input
    batch = tensor_input.shape[0]
    if unit == "h.pos":
        rows, units = list(range(batch)), _head_pos_units(unit_locations_as_list)
    else:
        rows = [i for i, loc in enumerate(unit_locations_as_list) if loc is not None]
        if not rows:
            return tensor_input
        if unit == "t":
            units = _units([[0]] * len(rows), unit)
            value = value.unsqueeze(1)
        else:
            units = _units([unit_locations_as_list[i] for i in rows], unit)
        if value.shape[0] == batch and len(rows) != batch:
            value = value[rows]
    if unit == "pos" and site.part is not None and value.shape[-1] == tensor_input.shape[-1]:
        value = value[..., site.part[0] : site.part[1]]  # a raw-width replacement (original)
    if len(rows) == batch:
        tensor_input.copy_(scatter(tensor_input, site, units, value))
    else:
        tensor_input[rows] = scatter(tensor_input[rows], site, units, value)
    return tensor_input


def do_intervention(
    base_representation: torch.Tensor,
    source_representation: torch.Tensor | None,
    intervention: Any,
    subspaces: Any,
) -> torch.Tensor:
    """Call an intervention on gathered units with the engine's flattening rule (distributed
    interventions see ``(B, U*D)``); a plain function gets ``(base, source)``."""
    if not isinstance(intervention, nn.Module) and callable(intervention):
        return intervention(base_representation, source_representation)
    state = CallState(base_units={}, source_units={}, subspaces={})
    return apply_intervention(
        intervention, base_representation, source_representation, subspaces, False, state
    )


_HOOK_METHODS = {"input": CONST_INPUT_HOOK, "output": CONST_OUTPUT_HOOK}


def get_module_hook(model: nn.Module, representation: Any) -> Any:
    """The bound hook-registration method (``module.register_forward_hook`` or
    ``register_forward_pre_hook``) of the module ``representation`` resolves to."""
    site = resolve_site(model, representation.layer, representation.component)
    return getattr(site.module, _HOOK_METHODS[site.hook])


class HandlerList:
    """Hook handles removed together."""

    def __init__(self, handlers: list[Any]) -> None:
        self.handlers = handlers

    def __len__(self) -> int:
        return len(self.handlers)

    def remove(self) -> None:
        for handler in self.handlers:
            handler.remove()

    def extend(self, new_handlers: HandlerList) -> HandlerList:
        self.handlers.extend(new_handlers.handlers)
        return self


def is_gru(model: nn.Module) -> bool:
    """True for the bundled GRU research models (the original's helper)."""
    return type(model) in (GRUModel, GRULMHeadModel, GRUForClassification)


def is_mlp(model: nn.Module) -> bool:
    """True for the bundled MLP research models (the original's helper)."""
    return type(model) in (MLPModel, MLPForClassification)


def is_transformer(model: nn.Module) -> bool:
    """True for any model that is neither a bundled GRU nor MLP (the original's helper)."""
    return not is_gru(model) and not is_mlp(model)


def is_stateless(model: nn.Module) -> bool:
    """False for recurrent models (GRU), whose units include timesteps."""
    return not is_gru(model)


__all__ = [
    "HandlerList",
    "LambdaIntervention",
    "UnsupportedUnitError",
    "do_intervention",
    "gather_neurons",
    "get_dimension_by_component",
    "get_module_hook",
    "getattr_for_torch_module",
    "hf_models",
    "is_gru",
    "is_mlp",
    "is_stateless",
    "is_transformer",
    "output_to_subcomponent",
    "scatter_neurons",
    "torch",
    "type_to_dimension_mapping",
    "type_to_module_mapping",
]
