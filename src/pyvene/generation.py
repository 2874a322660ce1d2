"""``IntervenableModel.generate``: HF ``model.generate`` with interventions, KV cache kept on.

Every forward call of one ``generate`` has a *step*: step 0 is the prompt (prefill) call,
step ``t >= 1`` the t-th decoding call, whose input under the KV cache is the t-th generated
token alone (shape ``(B, 1)``). Locations are relative to each call's input, as in the
original. An intervention on prompt positions changes the cached keys/values and is carried
by the cache; one on new tokens fires again at each decoding step.

When each intervention fires (first rule that applies):

1. ``timestep_selector`` given for it: at the steps where ``selector(step)`` is True
   (one callable for all, a list in config order with None entries, or ``{key: fn}``).
2. No ``unit_locations``, the intervention reads a source run: the prompt call only, on the
   whole tensor, exactly as ``forward()`` would (a source activation exists for the prompt
   positions only), then decoding goes on from that state.
3. No ``unit_locations``, constant source (``source_representations``, Zero, Noise,
   Collect, ...) and ``intervene_on_prompt=True``: every position of every call (steering).
4. No ``unit_locations``, constant source, ``intervene_on_prompt=False`` (the original's
   default ``{"base": 0}``): the newest token of every decoding call (the last position of
   the call's input, so it also holds with ``use_cache=False``; head components: all heads).
5. Explicit ``unit_locations`` (the original's gating): ``intervene_on_prompt=True`` -> the
   prompt call only, False -> every decoding call, never the prompt.

Left-padded batches work as in HF; prompt positions index the padded tensor. With
``num_beams`` / ``num_return_sequences`` HF repeats each row; sources, locations and
subspaces are repeated the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .engine import CallState, Slot, make_setter, wants_module_input
from .errors import ConfigError
from .gather import Units
from .hooks import HookSession
from .pipeline import CallRecord, place_locations, place_state, prepare, read_sources, shape_result
from .plan import InterventionPlan

Selector = Callable[[int], bool]


def generate(
    plan: InterventionPlan,
    model: nn.Module,
    base: Any,
    sources: Any = None,
    unit_locations: dict | None = None,
    source_representations: Any = None,
    intervene_on_prompt: bool = False,
    subspaces: Any = None,
    output_original_output: bool = False,
    intervention_additional_kwargs: dict | None = None,
    timestep_selector: Any = None,
    **kwargs: Any,
) -> tuple[Any, CallRecord]:
    """Generate with interventions; ``kwargs`` go to ``model.generate`` unchanged.

    Returns ``(original_or_None, generated)`` or, with collect interventions,
    ``((original_or_None, collected_list), generated)``, where ``collected_list`` holds one
    tensor per firing in config order. ``generated`` is whatever ``model.generate`` returns
    (a ``(B, S + new)`` id tensor by default). Also returns the call's record.
    """
    if plan.mode != "parallel":
        raise ConfigError("generate() supports parallel mode only; this model is in serial mode")
    check_generate_kwargs(kwargs)
    call = prepare(
        plan, base, sources, source_representations, subspaces, intervention_additional_kwargs
    )
    state = call.state
    selectors = _selectors(timestep_selector, plan)
    explicit = unit_locations is not None
    if explicit:
        place_locations(plan, call, unit_locations)
    run_keys = {s.key for slots in call.runs.values() for s in slots}
    fire: dict[str, Selector] = {}
    for slot in call.active:
        if slot.key in selectors:
            fire[slot.key] = selectors[slot.key]
        elif explicit:
            fire[slot.key] = _prompt_only if intervene_on_prompt else _decoding_only
        elif slot.key in run_keys:
            fire[slot.key] = _prompt_only
        elif intervene_on_prompt:
            fire[slot.key] = _always
        else:
            fire[slot.key] = _decoding_only
            if slot.site.heads is None:
                state.base_units[slot.key] = _LAST
    place_state(plan, call)  # once per generate call, not per step
    read_sources(plan, model, call)
    original = model.generate(**call.base, **kwargs) if output_original_output else None
    step = [-1]

    def count() -> None:
        step[0] += 1

    with HookSession() as session:
        session.on_call(model, count)
        given = set(call.given)
        for slot in call.active:
            gated = _gated(slot, state, call.batch, fire[slot.key], step, given)
            with_input = wants_module_input(slot, plan.as_adaptor)
            session.on(slot.site.module, slot.site.hook, gated, with_input)
        out = model.generate(**call.base, **kwargs)
    return shape_result(plan, original, out, state, False)


_LENGTHS = ("max_new_tokens", "max_length", "min_new_tokens", "min_length", "num_beams",
            "num_return_sequences")  # fmt: skip


def check_generate_kwargs(kwargs: dict[str, Any]) -> None:
    """Refuse a length or beam count that is not a positive int (HF would fail deep inside
    ``generate`` with a TypeError comparing it)."""
    for name in _LENGTHS:
        value = kwargs.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"generate({name}={value!r}): {name} must be a non-negative int, e.g. {name}=20"
            )


_LAST = Units(torch.tensor([[-1]]), None, (-1, -1))


def _always(step: int) -> bool:
    return True


def _prompt_only(step: int) -> bool:
    return step == 0


def _decoding_only(step: int) -> bool:
    return step >= 1


def _selectors(value: Any, plan: InterventionPlan) -> dict[str, Selector]:
    """key -> step predicate from one callable, a config-order list, or a {key: fn} dict."""
    keys = plan.keys
    if value is None:
        return {}
    if callable(value):
        pairs = [(k, value) for k in keys]
    elif isinstance(value, dict):
        pairs = [(plan.resolve(k), f) for k, f in value.items()]
    elif isinstance(value, (list, tuple)):
        if len(value) != len(keys):
            raise ConfigError(
                f"timestep_selector lists {len(value)} entries for {len(keys)} interventions; "
                "give one per intervention (None = default gating), one callable, or a dict"
            )
        pairs = list(zip(keys, value))
    else:
        raise ConfigError(
            f"timestep_selector must be a callable step -> bool, a list or a dict, got "
            f"{type(value).__name__}"
        )
    out = {}
    for key, fn in pairs:
        if fn is None:
            continue
        if not callable(fn):
            raise ConfigError(f"timestep_selector for {key}: {fn!r} is not callable")
        out[key] = _as_step_predicate(fn)
    return out


def _as_step_predicate(fn: Callable) -> Selector:
    return lambda step: bool(fn(step))


def _gated(slot: Slot, state: CallState, batch: int, fire: Selector, step: list[int], given: set):
    """The slot's setter, run only at the steps ``fire`` picks; rows repeated by HF (beams,
    several return sequences) get a state whose per-row values are repeated alike."""
    setters: dict[int, Callable] = {1: make_setter(slot, state)}

    def gated(x: torch.Tensor, module_input: torch.Tensor | None = None):
        if not fire(max(step[0], 0)):
            return None
        rows = x.shape[0] if x.dim() > 1 else 1
        factor = rows // batch if rows % batch == 0 and rows >= batch else 1
        if factor not in setters:
            setters[factor] = make_setter(slot, _repeat_state(state, batch, factor, given))
        setter = setters[factor]
        return setter(x) if module_input is None else setter(x, module_input)

    return gated


def _repeat_state(state: CallState, batch: int, factor: int, given: set) -> CallState:
    """A view of ``state`` whose per-example entries are repeated ``factor`` times per row
    (HF's ``repeat_interleave`` expansion); collected lists and outputs stay shared."""

    def rows(t: Any) -> Any:
        if isinstance(t, torch.Tensor) and t.dim() > 1 and t.shape[0] == batch:
            return t.repeat_interleave(factor, 0)
        return t

    def units(u: Units | None) -> Units | None:
        if u is None or u.index.shape[0] != batch or batch == 1:
            return u
        pos = None if u.pos is None else rows(u.pos)
        return Units(rows(u.index), pos, u.bounds, u.pos_bounds)

    def subspace(s: Any) -> Any:
        if isinstance(s, list) and len(s) == batch and batch > 1:
            return [r for r in s for _ in range(factor)]
        return s

    new = CallState(
        {k: units(v) for k, v in state.base_units.items()},
        {k: units(v) for k, v in state.source_units.items()},
        {k: subspace(v) for k, v in state.subspaces.items()},
        {k: v if k in given and batch == 1 else rows(v) for k, v in state.sources.items()},
        extra_kwargs=state.extra_kwargs,
    )
    new.collected = state.collected
    new.full_outputs = state.full_outputs
    return new


__all__ = ["Selector", "check_generate_kwargs", "generate"]
