"""``IntervenableModel.forward``: the shared pipeline (:mod:`pyvene.pipeline`) prepares the
call, then the passes of :mod:`pyvene.engine` run -- one batch of source and base rows when
they can share it, else the source runs then the base run, or the serial chain -- and the
pipeline shapes the result as the original API does."""

from __future__ import annotations

from typing import Any

from torch import nn

from .engine import (
    Layout,
    Slot,
    collect_sources,
    grad_free,
    install_setters,
    slice_rows,
    stack_inputs,
)
from .errors import LocationError
from .hooks import HookSession
from .idioms import check_call
from .interventions.contract import contract
from .locations import broadcast, sides_to_units
from .pipeline import (
    Call,
    CallRecord,
    place_locations,
    place_state,
    prepare,
    read_sources,
    seq_tokens,
    shape_result,
)
from .plan import InterventionPlan


def model_call_kwargs(plan: InterventionPlan, labels: Any, use_cache: Any) -> dict[str, Any]:
    """The extra keyword arguments of the base run (``labels``, ``use_cache``)."""
    extra: dict[str, Any] = {}
    if labels is not None:
        extra["labels"] = labels
    if use_cache is not None and plan.has_use_cache:
        extra["use_cache"] = use_cache
    return extra


def intervened_call(
    plan: InterventionPlan,
    model: nn.Module,
    base: Any,
    sources: Any = None,
    unit_locations: Any = None,
    source_representations: Any = None,
    subspaces: Any = None,
    labels: Any = None,
    output_original_output: bool = False,
    return_dict: bool | None = None,
    use_cache: bool | None = None,
    intervention_additional_kwargs: dict | None = None,
) -> tuple[Any, CallRecord]:
    """One intervened forward; returns the shaped result and the call's record."""
    call = prepare(
        plan, base, sources, source_representations, subspaces, intervention_additional_kwargs
    )
    extra = model_call_kwargs(plan, labels, use_cache)
    original = None
    if plan.mode == "serial":
        out = _serial(plan, model, call, unit_locations, extra)
        if output_original_output:
            original = model(**call.base)
        return shape_result(plan, original, out, call.state, return_dict)
    place_locations(plan, call, unit_locations)
    place_state(plan, call)
    check_call(call.active, call.runs, call.base, call.sources, call.state)
    parts = _one_pass_parts(plan, call, labels, use_cache, output_original_output)
    if parts is not None:
        stacked, chunks, src_inputs = parts
        batch = call.batch
        call.state.detach_sources = grad_free(model, src_inputs)
        one_pass_extra = {"use_cache": False} if plan.has_use_cache else {}
        with HookSession() as session:
            layout = Layout(batch, chunks)
            install_setters(session, call.active, call.state, layout, plan.as_adaptor)
            full = model(**stacked, **one_pass_extra)
        total = batch * chunks
        if output_original_output:
            original = slice_rows(full, batch, 2 * batch, total)
        out = slice_rows(full, total - batch, total, total)
    else:
        read_sources(plan, model, call)
        if output_original_output:
            original = model(**call.base)
        with HookSession() as session:
            install_setters(session, call.active, call.state, None, plan.as_adaptor)
            out = model(**call.base, **extra)
    return shape_result(plan, original, out, call.state, return_dict)


def _one_pass_parts(plan: InterventionPlan, call: Call, labels, use_cache, with_original):
    """(stacked inputs, chunk count, source inputs) when source and base can share a batch."""
    runs, base = call.runs, call.base
    if plan.batch_sources is False or len(runs) != 1 or labels is not None or use_cache:
        return None
    ((group, slots),) = runs.items()
    if any(contract(s.intervention).source_from_input for s in slots):
        return None
    if any(s.unit == "t" for s in slots):  # a source timestep may come after its base one
        return None
    if plan.batch_sources == "auto" and seq_tokens(base) > plan.one_pass_max_tokens:
        return None
    parts = [call.sources[group]] + ([base] if with_original else []) + [base]
    stacked = stack_inputs(parts)
    if stacked is None:
        return None
    return stacked, len(parts), call.sources[group]


def _serial(plan: InterventionPlan, model: nn.Module, call: Call, unit_locations, extra):
    """source_0 -> source_1 -> ... -> base: each source run is patched by the group before."""
    groups, state = plan.n_groups, call.state
    by_group: dict[int, list[Slot]] = {}
    for slot in call.active:
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
                src, dst, keys, [s.unit for s in slots], call.batch
            ).items():
                state.source_units[key], state.base_units[key] = s, d
        place_state(plan, call, slots)
        needs = [s for s in slots if not s.constant and s.key not in state.sources]
        if call.sources[g] is not None and needs:
            state.sources.update(
                collect_sources(
                    model,
                    call.sources[g],
                    needs,
                    state.source_units,
                    (previous, state),
                    plan.has_use_cache,
                )
            )
        previous = [s for s in slots if s.constant or s.key in state.sources]
    with HookSession() as session:
        install_setters(session, previous, state)
        return model(**call.base, **extra)


__all__ = ["intervened_call", "model_call_kwargs"]
