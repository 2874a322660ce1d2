"""One intervened forward: source collect pass(es), then the base patch pass.

Slot: one intervention placed at a :class:`~pyvene.families.HookSite` (its key, unit, group
and config order); Layout: the row layout of a one-pass batch; CallState: one call's data.

Parallel mode runs, when it can, source and base as ONE batch (source rows, then base rows)
and copies across rows at each site: on a CPU a small-batch forward is memory-bound, so one
pass of 2B rows costs far less than two passes of B. Otherwise each source runs first under
``no_grad`` (when nothing upstream needs a gradient) and stops right after the deepest site
it feeds. Serial mode chains source_0 -> source_1 -> ... -> base. Unit "t" (a module that
runs once per timestep) counts hook calls instead of indexing positions: pyvene/recurrent.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import DimensionMismatchError, PyveneError
from .families import HookSite
from .gather import Units, gather, scatter
from .hooks import HookSession, Side, StopForward
from .interventions.base import broadcast_source, unwrap_output
from .interventions.contract import contract
from .recurrent import StepAccess, StepReader, check_step_unit


@dataclass
class Slot:
    """One intervention placed in the model (config order = ``order``)."""

    key: str
    site: HookSite
    intervention: nn.Module
    unit: str
    group: int
    order: int

    def __post_init__(self) -> None:
        check_step_unit(self.unit, self.site)

    @property
    def constant(self) -> bool:
        return not contract(self.intervention).needs_source


@dataclass
class Layout:
    """Row layout of a one-pass batch: ``src`` rows, optional clean rows, ``base`` rows."""

    batch: int
    chunks: int

    def source_rows(self, x: torch.Tensor) -> torch.Tensor:
        return x[: self.batch]

    def base_rows(self, x: torch.Tensor) -> torch.Tensor:
        return x[(self.chunks - 1) * self.batch :]

    def replace_base(self, x: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[: (self.chunks - 1) * self.batch], new], 0)


@dataclass
class CallState:
    """What one call needs at every hook firing."""

    base_units: dict[str, Units | None]
    source_units: dict[str, Units | None]
    subspaces: dict[str, Any]
    sources: dict[str, torch.Tensor] = field(default_factory=dict)
    collected: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    full_outputs: list[Any] = field(default_factory=list)
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    detach_sources: bool = False


def apply_intervention(
    intervention: nn.Module,
    base: torch.Tensor,
    source: torch.Tensor | None,
    subspaces: Any,
    whole: bool,
    state: CallState,
    module_input: dict[str, Any] | None = None,
) -> torch.Tensor | None:
    """Call the intervention with the original's flattening rule: distributed (rotation-like)
    interventions see units flattened into one vector (``(B, U*D)``, heads ``(B, P, H*Dh)``);
    localist ones, collect, ``keep_last_dim`` and whole-tensor calls see ``(B, U, D)``."""
    declared = contract(intervention)
    flatten = not whole and base.dim() >= 3 and declared.flatten
    if source is not None and source.shape != base.shape and flatten:
        source = broadcast_source(source, base)
    shape = base.shape
    if flatten:
        base, source = (_flatten(t) for t in (base, source))
        expected = getattr(intervention, "embed_dim", None)
        if expected is not None and base.shape[-1] != expected:
            raise DimensionMismatchError(
                f"{type(intervention).__name__} expects vectors of width {expected} "
                f"(component width x max_number_of_units), but the selected units flatten to "
                f"{base.shape[-1]} (shape {tuple(shape)}); set max_number_of_units to the number "
                "of units you select, or pass keep_last_dim=True to act per unit"
            )
    constant = not declared.needs_source
    kwargs = dict(state.extra_kwargs) if constant else {}
    if module_input is not None:
        kwargs.update(module_input)
    full = intervention(base, source, subspaces, **kwargs)
    out, wrapped = unwrap_output(full)
    if wrapped and constant:
        state.full_outputs.append(full)
    if out is None or not flatten:
        return out
    return _unflatten(out, shape)


def _flatten(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is None:
        return None
    if t.dim() == 3:  # (B, U, D) -> (B, U*D)
        return t.reshape(t.shape[0], -1)
    return t.permute(0, 2, 1, 3).reshape(t.shape[0], t.shape[2], -1)  # (B,H,P,Dh)->(B,P,H*Dh)


def _unflatten(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if len(shape) == 3:
        return t.reshape(shape)
    b, h, p, d = shape
    return t.reshape(b, p, h, d).permute(0, 2, 1, 3)


class PositionAccess:
    """How a setter reads and writes units that index the hooked tensor (positions, heads,
    heads x positions): :func:`~pyvene.gather.gather` / :func:`~pyvene.gather.scatter`. The
    recurrent unit "t" has its own access (:class:`~pyvene.recurrent.StepAccess`)."""

    def __init__(self, slot: Slot, state: CallState, layout: Layout | None) -> None:
        self.key, self.site, self.state, self.layout = slot.key, slot.site, state, layout
        self.type_name = type(slot.intervention).__name__
        site = slot.site
        self.input_site = HookSite(
            site.module, site.module_path, "input", site.component, None, None
        )

    def begin(self, x: torch.Tensor, units: Units | None) -> bool:
        return True  # every call of the module is the one forward

    def read(self, rows: torch.Tensor, units: Units | None) -> torch.Tensor:
        return gather(rows, self.site, units)

    def read_input(self, rows: torch.Tensor, units: Units | None) -> torch.Tensor:
        return gather(rows, self.input_site, units if self.site.heads is None else None)

    def source(self, x: torch.Tensor) -> torch.Tensor:
        state, key = self.state, self.key
        if key in state.sources:
            return state.sources[key]
        if self.layout is None:
            raise PyveneError(f"{key}: no source activation for this call")
        source = gather(self.layout.source_rows(x), self.site, state.source_units.get(key))
        return source.detach() if state.detach_sources else source

    def keep(self, out: torch.Tensor) -> None:
        self.state.collected.setdefault(self.key, []).append(out)

    def write(self, rows: torch.Tensor, units: Units | None, out: torch.Tensor) -> torch.Tensor:
        try:
            return scatter(rows, self.site, units, out)
        except DimensionMismatchError as err:
            raise DimensionMismatchError(
                f"{self.key}: {self.type_name} returned shape {tuple(out.shape)}; {err}"
            ) from err


def make_setter(
    slot: Slot, state: CallState, layout: Layout | None = None, session: HookSession | None = None
) -> Callable[..., torch.Tensor | None]:
    """The hook function that patches ``slot`` on the base rows: read the units, get the
    source, call the intervention, write the result back (or keep it, for Collect). Unit "t"
    needs the ``session`` (its range check and Collect result run once the forward is over)."""
    if slot.unit == "t":
        if session is None:
            raise PyveneError(
                f"{slot.key}: recurrent unit 't' interventions run in forward() only (not "
                "generate()); call the model with the whole sequence"
            )
        access: PositionAccess | StepAccess = StepAccess(slot, state, session, layout)
    else:
        access = PositionAccess(slot, state, layout)
    key, intervention = slot.key, slot.intervention
    collect = contract(intervention).collects
    needs_source = not (collect or slot.constant)

    def setter(x: torch.Tensor, module_input: torch.Tensor | None = None) -> torch.Tensor | None:
        units = state.base_units.get(key)
        if not access.begin(x, units):
            return None
        rows = x if layout is None else layout.base_rows(x)
        base = access.read(rows, units)
        module_args = None
        if module_input is not None:  # adaptor-style: the module input at the same units
            in_rows = module_input if layout is None else layout.base_rows(module_input)
            module_args = {"args": access.read_input(in_rows, units)}
        source = access.source(x) if needs_source else None
        out = apply_intervention(
            intervention, base, source, state.subspaces.get(key), units is None, state, module_args
        )
        if collect:
            access.keep(out)
            return None
        if out is None:
            return None
        new = access.write(rows, units, out)
        return new if layout is None else layout.replace_base(x, new)

    return setter


def wants_module_input(slot: Slot, as_adaptor: bool = False) -> bool:
    """Adaptor-style interventions (LoRA) also receive the hooked module's input as ``args``."""
    needs = as_adaptor or contract(slot.intervention).module_input
    return bool(needs) and slot.site.hook == "output"


def install_setters(
    session: HookSession, slots: list[Slot], state: CallState, layout=None, as_adaptor=False
):
    """Install each slot's setter hook (the patch of the base pass) on ``session``, which owns
    and removes the handles."""
    for slot in slots:
        with_input = wants_module_input(slot, as_adaptor)
        setter = make_setter(slot, state, layout, session)
        session.on(slot.site.module, slot.site.hook, setter, with_input)


def grad_free(model: nn.Module, inputs: dict[str, Any]) -> bool:
    """True when no model weight and no input tensor needs a gradient."""
    if not torch.is_grad_enabled():
        return True
    if any(p.requires_grad for p in model.parameters()):
        return False
    return not any(isinstance(v, torch.Tensor) and v.requires_grad for v in inputs.values())


class PositionReader:
    """Reads the source activation of one position-style intervention (first call only)."""

    def __init__(self, key: str, site: HookSite, units: Units | None) -> None:
        self.key, self.site, self.units = key, site, units
        self.value: torch.Tensor | None = None

    @property
    def done(self) -> bool:
        return self.value is not None

    def __call__(self, x: torch.Tensor) -> bool:
        got = gather(x, self.site, self.units)
        self.value = got.clone() if self.units is None else got
        return True

    def result(self) -> torch.Tensor:
        if self.value is None:
            raise PyveneError(
                f"the source run never reached {self.key!r}: {self.site.module_path} did not run "
                "for this input"
            )
        return self.value


def collect_sources(
    model: nn.Module,
    inputs: dict[str, Any],
    slots: list[Slot],
    units: dict[str, Units | None],
    setters: tuple[list[Slot], CallState] | None = None,
    use_cache_key: bool = False,
) -> dict[str, Any]:
    """Run ``model(**inputs)`` with getters on ``slots`` and stop once every one has read what
    it needs (unit "t": after its last chosen timestep). ``setters`` (serial mode) patches
    this source run with the previous group first. Values: tensors, or
    :class:`~pyvene.recurrent.StepSource` for unit "t"."""
    readers = {
        s.key: (StepReader if s.unit == "t" else PositionReader)(s.key, s.site, units.get(s.key))
        for s in slots
    }
    pending = set(readers)
    if not pending:
        return {}
    call_kwargs = {"use_cache": False} if use_cache_key else {}
    ctx = torch.no_grad() if grad_free(model, inputs) else contextlib.nullcontext()
    try:  # StopForward leaves the session with an exception: its after-forward checks skip
        with HookSession() as session:
            if setters is not None:
                install_setters(session, *setters)
            for slot in slots:

                def getter(x, key=slot.key, reader=readers[slot.key]):
                    if not reader.done and reader(x):
                        pending.discard(key)
                        if not pending:
                            raise StopForward
                    return None

                side = slot.site.hook
                if contract(slot.intervention).source_from_input:  # Skip: module input
                    side = Side("input", getattr(side, "tokens_from", None))
                session.on(slot.site.module, side, getter)
            with ctx:
                model(**inputs, **call_kwargs)
    except StopForward:
        pass
    return {key: reader.result() for key, reader in readers.items()}


def stack_inputs(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Concatenate input dicts along the batch (None if their shapes or keys differ)."""
    first = parts[0]
    out = {}
    for k, v in first.items():
        vals = [p.get(k) for p in parts]
        if isinstance(v, torch.Tensor):
            if not all(
                isinstance(o, torch.Tensor) and o.shape == v.shape and o.dtype == v.dtype
                for o in vals
            ):
                return None
            out[k] = torch.cat(vals, 0)
        elif all(o is v or o == v for o in vals):
            out[k] = v
        else:
            return None
    if any(set(p) != set(first) for p in parts):
        return None
    return out


def slice_rows(output: Any, start: int, stop: int, total: int) -> Any:
    """Rows ``start:stop`` of every batch-first tensor inside a model output."""
    if isinstance(output, torch.Tensor):
        return output[start:stop] if output.dim() and output.shape[0] == total else output
    if isinstance(output, dict):  # ModelOutput keeps its class
        new = output.__class__(**{k: slice_rows(v, start, stop, total) for k, v in output.items()})
        return new
    if isinstance(output, (tuple, list)):
        return type(output)(slice_rows(v, start, stop, total) for v in output)
    return output
