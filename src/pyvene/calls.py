"""The per-call orchestration of IntervenableModel.forward: normalize the call's arguments
(without mutating them), decide which interventions run and where their sources come from,
then run the passes of :mod:`pyvene.engine` and shape the result as the original API does."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from .devices import place_call_state
from .engine import (
    CallState,
    Layout,
    Slot,
    collect_sources,
    grad_free,
    install_setters,
    slice_rows,
    stack_inputs,
)
from .errors import ConfigError, LocationError, user_stacklevel
from .hooks import HookSession
from .idioms import check_call
from .interventions.contract import contract
from .locations import broadcast, broadcast_subspaces, normalize, sides_to_units

if TYPE_CHECKING:
    from .intervenable import IntervenableModel


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


def batch_size(inputs: dict[str, Any]) -> int:
    """Batch size of the base inputs: the first dimension of the first non-scalar tensor."""
    for v in inputs.values():
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return int(v.shape[0])
    raise ConfigError("cannot read the batch size: the base inputs hold no tensor")


def seq_tokens(inputs: dict[str, Any]) -> int:
    """Number of tokens in the inputs (batch x sequence of the first 2-d tensor, else the batch
    size); sizes per-call work."""
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


def normalize_given(pvm: IntervenableModel, given: Any) -> dict[str, torch.Tensor]:
    """source_representations: {key: tensor}, a list in key order, or one tensor for all."""
    keys = pvm.sorted_keys
    if given is None:
        return {}
    if isinstance(given, torch.Tensor):
        return dict.fromkeys(keys, given)
    if isinstance(given, dict):
        return {pvm.interventions.resolve(k): v for k, v in given.items() if v is not None}
    if isinstance(given, (list, tuple)):
        if len(given) < len(keys):
            raise ConfigError(
                f"source_representations lists {len(given)} tensors for {len(keys)} interventions"
            )
        return {k: v for k, v in zip(keys, given) if v is not None}
    raise ConfigError(f"source_representations of type {type(given).__name__} is not supported")


def _model_call_kwargs(pvm: IntervenableModel, labels: Any, use_cache: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if labels is not None:
        extra["labels"] = labels
    if use_cache is not None and _has_use_cache(pvm):
        extra["use_cache"] = use_cache
    return extra


def _has_use_cache(pvm: IntervenableModel) -> bool:
    config = pvm.model_config
    return config is not None and hasattr(config, "use_cache")


def _plan(pvm, sources, given) -> tuple[list[Slot], dict[int, list[Slot]]]:
    """Active slots and, per group, the slots whose source must be read from a source run."""
    active: list[Slot] = []
    runs: dict[int, list[Slot]] = {}
    for slot in pvm._slots:
        if slot.key in given or slot.constant:
            active.append(slot)
        elif sources[slot.group] is not None:
            active.append(slot)
            runs.setdefault(slot.group, []).append(slot)
    if pvm._slots and not active:
        names = ", ".join(sorted({type(s.intervention).__name__ for s in pvm._slots}))
        warnings.warn(
            f"no intervention runs in this call: {names} needs a source and none was given "
            "(sources=[...], source_representations=..., or a stored source_representation); "
            "the model ran unchanged",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return active, runs


def intervened_call(
    pvm: IntervenableModel,
    base: Any,
    sources: Any,
    unit_locations: Any,
    source_representations: Any,
    subspaces: Any,
    labels: Any,
    output_original_output: bool,
    return_dict: bool | None,
    use_cache: bool | None,
    extra_kwargs: dict | None,
) -> Any:
    """One intervened forward of ``pvm`` (``IntervenableModel.forward``): normalize sources,
    locations and subspaces, run the source collect pass(es) and the patched base pass, and
    shape the result as the original API returns it."""
    model = pvm.model
    base = as_inputs(base)
    batch = batch_size(base)
    keys = pvm.sorted_keys
    sources = normalize_sources(sources, pvm._n_groups)
    given = normalize_given(pvm, source_representations)
    sub = broadcast_subspaces(subspaces, len(keys), batch)
    state = CallState({}, {}, dict(zip(keys, sub)), extra_kwargs=dict(extra_kwargs or {}))
    state.sources.update(given)
    active, runs = _plan(pvm, sources, given)
    extra = _model_call_kwargs(pvm, labels, use_cache)
    original = None

    if pvm.mode == "serial":
        out = _serial(pvm, base, sources, unit_locations, state, active, batch, extra)
        if output_original_output:
            original = model(**base)
    else:
        units = [s.unit for s in pvm._slots]
        for key, (src, dst) in normalize(unit_locations, keys, units, batch).items():
            state.source_units[key], state.base_units[key] = src, dst
        place_call_state(state, pvm._site_devices, active)
        check_call(active, runs, base, sources, state)
        layout_parts = _one_pass_parts(
            pvm, base, sources, runs, labels, use_cache, output_original_output
        )
        if layout_parts is not None:
            stacked, chunks, src_inputs = layout_parts
            layout = Layout(batch, chunks)
            state.detach_sources = grad_free(model, src_inputs)
            one_pass_extra = {"use_cache": False} if _has_use_cache(pvm) else {}
            with HookSession() as session:
                install_setters(session, active, state, layout, pvm.as_adaptor)
                full = model(**stacked, **one_pass_extra)
            total = batch * chunks
            if output_original_output:
                original = slice_rows(full, batch, 2 * batch, total)
            out = slice_rows(full, total - batch, total, total)
        else:
            for group, slots in runs.items():
                state.sources.update(
                    collect_sources(
                        model, sources[group], slots, state.source_units, None, _has_use_cache(pvm)
                    )
                )
            if output_original_output:
                original = model(**base)
            with HookSession() as session:
                install_setters(session, active, state, None, pvm.as_adaptor)
                out = model(**base, **extra)
    pvm.full_intervention_outputs = state.full_outputs
    return _result(pvm, original, out, state, return_dict)


def _one_pass_parts(pvm, base, sources, runs, labels, use_cache, with_original):
    """(stacked inputs, chunk count, source inputs) when source and base can share a batch."""
    if pvm.batch_sources is False or len(runs) != 1 or labels is not None or use_cache:
        return None
    ((group, slots),) = runs.items()
    if any(contract(s.intervention).source_from_input for s in slots):
        return None
    if any(s.unit == "t" for s in slots):  # a source timestep may come after its base one
        return None
    if pvm.batch_sources == "auto" and seq_tokens(base) > pvm.one_pass_max_tokens:
        return None
    parts = [sources[group]] + ([base] if with_original else []) + [base]
    stacked = stack_inputs(parts)
    if stacked is None:
        return None
    return stacked, len(parts), sources[group]


def _serial(pvm, base, sources, unit_locations, state, active, batch, extra):
    """source_0 -> source_1 -> ... -> base: each source run is patched by the group before."""
    groups = pvm._n_groups
    by_group: dict[int, list[Slot]] = {}
    for slot in active:
        by_group.setdefault(slot.group, []).append(slot)
    unit_locations = unit_locations or {}
    valid = [f"source_{g}->source_{g + 1}" for g in range(groups - 1)] + [
        f"source_{groups - 1}->base"
    ]
    bad = [k for k in unit_locations if k not in valid]
    if bad:
        raise LocationError(
            f"serial mode: unknown unit_locations key {bad[0]!r}; valid: {', '.join(valid)}"
        )
    previous: list[Slot] = []
    for g in range(groups):
        slots = by_group.get(g, [])
        keys = [s.key for s in slots]
        value = unit_locations.get(valid[g])
        if value is not None and slots:
            src, dst = broadcast(value, False, len(slots))
            for key, (s, d) in sides_to_units(
                src, dst, keys, [s.unit for s in slots], batch
            ).items():
                state.source_units[key], state.base_units[key] = s, d
        place_call_state(state, pvm._site_devices, slots)
        needs = [s for s in slots if not s.constant and s.key not in state.sources]
        if sources[g] is not None and needs:
            state.sources.update(
                collect_sources(
                    pvm.model,
                    sources[g],
                    needs,
                    state.source_units,
                    (previous, state),
                    _has_use_cache(pvm),
                )
            )
        previous = [s for s in slots if s.constant or s.key in state.sources]
    with HookSession() as session:
        install_setters(session, previous, state)
        return pvm.model(**base, **extra)


def _result(pvm, original, out, state: CallState, return_dict):
    collects = [s.key for s in pvm._slots if contract(s.intervention).collects]
    pvm.activations = {
        k: (v[0] if len(v) == 1 else v) for k in collects if (v := state.collected.get(k))
    }
    if collects:
        collected = [t for k in collects for t in state.collected.get(k, [])]
        if return_dict:
            from .intervenable import IntervenableModelOutput

            return IntervenableModelOutput(
                original_outputs=original, intervened_outputs=out, collected_activations=collected
            )
        return (original, collected), out
    if return_dict:
        from .intervenable import IntervenableModelOutput

        return IntervenableModelOutput(original_outputs=original, intervened_outputs=out)
    return original, out
