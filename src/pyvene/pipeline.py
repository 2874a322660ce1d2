"""The call pipeline shared by ``forward`` (:mod:`pyvene.calls`) and ``generate``
(:mod:`pyvene.generation`): :func:`prepare` normalizes a call's arguments (never mutating
them) and decides which interventions run and which source run feeds each;
:func:`read_sources` runs the source passes; :func:`shape_result` shapes the result as the
original API does and returns what the call left behind (a :class:`CallRecord`) instead of
writing it anywhere. Every function reads the model's :class:`~pyvene.plan.InterventionPlan`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .devices import place_call_state
from .engine import CallState, Slot, collect_sources
from .errors import ConfigError, user_stacklevel
from .locations import broadcast_subspaces, normalize
from .outputs import IntervenableModelOutput
from .plan import InterventionPlan


def as_inputs(value: Any, what: str = "base") -> dict[str, Any]:
    """A dict of model kwargs from a dict / BatchEncoding / tensor of input ids."""
    if isinstance(value, torch.Tensor):
        return {"input_ids": value}
    if isinstance(value, Mapping) or hasattr(value, "keys"):
        return dict(value)
    raise ConfigError(
        f"{what} must be a dict of model inputs (e.g. a tokenizer's output) or a tensor of "
        f"input ids, got {type(value).__name__}"
    )


def check_token_ids(inputs: dict[str, Any], what: str) -> None:
    """Refuse floating ``input_ids`` for a model that embeds token ids (an embedding lookup
    would fail deep inside the model)."""
    ids = inputs.get("input_ids")
    if isinstance(ids, torch.Tensor) and (ids.is_floating_point() or ids.is_complex()):
        raise ConfigError(
            f"{what} input_ids is a {str(ids.dtype).removeprefix('torch.')} tensor, but this "
            "model looks token ids up in an embedding table; pass integer token ids (a "
            "tokenizer's output, or ids.long()), or give float features as inputs_embeds="
        )


def batch_size(inputs: dict[str, Any]) -> int:
    """The leading dimension of the first tensor with one."""
    for v in inputs.values():
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return int(v.shape[0])
    raise ConfigError("cannot read the batch size: the base inputs hold no tensor")


def seq_tokens(inputs: dict[str, Any]) -> int:
    """batch x sequence of the first tensor with two dimensions (else the batch size)."""
    for v in inputs.values():
        if isinstance(v, torch.Tensor) and v.dim() > 1:
            return int(v.shape[0] * v.shape[1])
    return batch_size(inputs)


def normalize_sources(sources: Any, groups: int) -> list[dict[str, Any] | None]:
    """None -> no sources; one input -> [it]; a 1-list broadcast to every group (a copy)."""
    if sources is None:
        return [None] * groups
    if not isinstance(sources, (list, tuple)):
        sources = [sources]
    sources = [None if s is None else as_inputs(s, "source") for s in sources]
    if len(sources) == 1 and groups > 1:
        sources = sources * groups
    if len(sources) != groups:
        raise ConfigError(
            f"Source length {len(sources)} is not equal to intervention length {groups}: give one "
            "source per group (or one for all)"
        )
    return sources


def normalize_given(plan: InterventionPlan, given: Any) -> dict[str, torch.Tensor]:
    """source_representations: {key: tensor}, a list in key order, or one tensor for all."""
    keys = plan.keys
    if given is None:
        return {}
    if isinstance(given, torch.Tensor):
        return dict.fromkeys(keys, given)
    if isinstance(given, dict):
        return {plan.resolve(k): v for k, v in given.items() if v is not None}
    if isinstance(given, (list, tuple)):
        if len(given) < len(keys):
            raise ConfigError(
                f"source_representations lists {len(given)} tensors for {len(keys)} interventions"
            )
        return {k: v for k, v in zip(keys, given) if v is not None}
    raise ConfigError(f"source_representations of type {type(given).__name__} is not supported")


def select_slots(
    plan: InterventionPlan, sources: list[dict[str, Any] | None], given: dict[str, Any]
) -> tuple[list[Slot], dict[int, list[Slot]]]:
    """Active slots and, per group, the slots whose source must be read from a source run."""
    active: list[Slot] = []
    runs: dict[int, list[Slot]] = {}
    for slot in plan.slots:
        if slot.key in given or slot.constant:
            active.append(slot)
        elif sources[slot.group] is not None:
            active.append(slot)
            runs.setdefault(slot.group, []).append(slot)
    if plan.slots and not active:
        names = ", ".join(sorted({type(s.intervention).__name__ for s in plan.slots}))
        warnings.warn(
            f"no intervention runs in this call: {names} needs a source and none was given "
            "(sources=[...], source_representations=..., or a stored source_representation); "
            "the model ran unchanged",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return active, runs


@dataclass
class Call:
    """One call's normalized arguments: base inputs, one source per group (or None), the
    per-hook state, the slots that run and, per group, the slots its source run feeds."""

    base: dict[str, Any]
    batch: int
    sources: list[dict[str, Any] | None]
    given: dict[str, torch.Tensor]
    state: CallState
    active: list[Slot]
    runs: dict[int, list[Slot]]


def prepare(
    plan: InterventionPlan,
    base: Any,
    sources: Any,
    source_representations: Any,
    subspaces: Any,
    extra_kwargs: dict | None,
) -> Call:
    """Normalize one call's arguments (the caller's objects are never changed)."""
    base = as_inputs(base)
    batch = batch_size(base)
    srcs = normalize_sources(sources, plan.n_groups)
    if plan.token_ids:
        check_token_ids(base, "base")
        for s in srcs:
            if s is not None:
                check_token_ids(s, "source")
    given = normalize_given(plan, source_representations)
    sub = broadcast_subspaces(subspaces, len(plan.slots), batch)
    state = CallState({}, {}, dict(zip(plan.keys, sub)), extra_kwargs=dict(extra_kwargs or {}))
    state.sources.update(given)
    active, runs = select_slots(plan, srcs, given)
    return Call(base, batch, srcs, given, state, active, runs)


def place_locations(plan: InterventionPlan, call: Call, unit_locations: Any) -> None:
    """Parallel mode: every key's (source, base) units from ``unit_locations``."""
    found = normalize(unit_locations, plan.keys, plan.units, call.batch)
    for key, (src, dst) in found.items():
        call.state.source_units[key], call.state.base_units[key] = src, dst


def place_state(plan: InterventionPlan, call: Call, slots: list[Slot] | None = None) -> None:
    """Move the call's per-key tensors to their sites' devices (once per call)."""
    place_call_state(call.state, plan.site_devices, call.active if slots is None else slots)


def read_sources(plan: InterventionPlan, model: nn.Module, call: Call) -> None:
    """Run each group's source pass and keep what its slots read."""
    for group, slots in call.runs.items():
        call.state.sources.update(
            collect_sources(
                model, call.sources[group], slots, call.state.source_units, None, plan.has_use_cache
            )
        )


@dataclass
class CallRecord:
    """What one call left behind, for the original API's "last call" attributes:
    ``activations`` (key -> what a collect intervention returned) and ``full_outputs``
    (the full outputs of constant-source interventions that return an InterventionOutput)."""

    activations: dict[str, Any] = field(default_factory=dict)
    full_outputs: list[Any] = field(default_factory=list)


def shape_result(
    plan: InterventionPlan, original: Any, out: Any, state: CallState, return_dict: bool | None
) -> tuple[Any, CallRecord]:
    """``(original, out)``, ``((original, collected), out)`` with collect interventions, or
    an IntervenableModelOutput with ``return_dict``; and the call's record."""
    collects = plan.collect_keys
    record = CallRecord(
        {k: (v[0] if len(v) == 1 else v) for k in collects if (v := state.collected.get(k))},
        state.full_outputs,
    )
    collected = [t for k in collects for t in state.collected.get(k, [])] if collects else None
    if return_dict:
        result: Any = IntervenableModelOutput(
            original_outputs=original, intervened_outputs=out, collected_activations=collected
        )
    elif collects:
        result = (original, collected), out
    else:
        result = original, out
    return result, record


__all__ = [
    "Call",
    "CallRecord",
    "as_inputs",
    "batch_size",
    "check_token_ids",
    "normalize_given",
    "normalize_sources",
    "place_locations",
    "place_state",
    "prepare",
    "read_sources",
    "select_slots",
    "seq_tokens",
    "shape_result",
]
