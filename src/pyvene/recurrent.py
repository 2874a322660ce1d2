"""The recurrent unit "t": interventions on a module that runs once per timestep (a GRU cell).

Why: a recurrent cell is ONE module called S times in one forward, each call on the (B, D)
state of one timestep, so positions do not exist there; the call index does. A hook counts
its calls during one forward: call ``c`` (0-based) is timestep ``c``.

Locations (:mod:`pyvene.locations`) nest like positions, timesteps for positions:
``{"sources->base": ([[[t_src]]], [[[t_base]]])}`` (one intervention, every example),
``[[[1], [3]]]`` (example 0 at 1, example 1 at 3), ``{"base": 3}``; ``None`` = every timestep.
Each example picks the same number U of timesteps; its k-th source timestep feeds its k-th
base timestep (source and base timesteps may differ).

Base pass (:class:`StepAccess`, driven by :func:`pyvene.engine.make_setter`): at call ``c`` the intervention sees the whole batch's
step activation, (B, D) as in the original, and its result is kept only on the rows of the
examples that chose ``c`` (a (B,) mask and ``torch.where``, no loop over examples); the other
examples, and every call nobody chose (skipped without a device sync), are untouched.

Source pass (:class:`StepReader`): fills a (B, U, D) buffer with each example's chosen source
timesteps and lets the source forward stop right after the last one; with ``None`` it keeps
every step, (B, T, D), and base step ``c`` reads source step ``c``.

Collect returns one tensor per intervention, like positions: (B, U, D) where ``[b, k]`` is the
activation at example b's k-th chosen timestep; with ``None`` (B, T, D), every step.

Range: how many steps a forward has is known only once it ran, so a chosen timestep >= the
number of calls raises :class:`~pyvene.errors.LocationError` right after the forward, naming
the timestep and how many timesteps ran. calls.py never runs a "t" source in the one-pass batch
(a source timestep later than its base timestep would not exist yet when the base step runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .errors import ConfigError, DimensionMismatchError, LocationError, PyveneError
from .families import HookSite
from .gather import Units, component_view
from .interventions.contract import contract

if TYPE_CHECKING:
    from .engine import CallState, Layout, Slot
    from .hooks import HookSession


def check_step_unit(unit: str, site: HookSite) -> None:
    """A component that runs once per timestep takes unit "t" only: with "pos" every call
    would be patched with whatever the source held at that call (the original's bug)."""
    if unit == "t" and not getattr(site, "per_step", False) and site.layer is not None:
        raise ConfigError(
            f"unit 't' (timesteps) needs a recurrent cell that runs once per timestep, but "
            f"{site.component!r} ({site.module_path}) runs once on the whole sequence; use "
            "unit 'pos' for positions (unit 't' would act on every position at once)"
        )
    if getattr(site, "per_step", False) and unit != "t":
        raise ConfigError(
            f"{site.component!r} runs once per timestep ({site.module_path} is a recurrent "
            f"cell), so it takes unit 't' (timesteps), not {unit!r}; e.g. unit='t' with "
            "unit_locations={'base': 3} for timestep 3 of every example"
        )


def step_view(x: torch.Tensor, site: HookSite) -> torch.Tensor:
    """The component at one call: (B, D) when the hooked tensor is (B, W), else the whole
    (B, ..., D) component. A view of ``x`` (no copy)."""
    view = component_view(x, site)
    return view[:, 0] if x.dim() == 2 else view


def select(
    units: Units, step: int, batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which examples chose ``step``: ``hit`` (B, U) bool, ``mask`` (B,) bool and ``k`` (B,)
    long, the (last) unit of each example equal to ``step`` (meaningless where ``mask`` is
    False)."""
    index = units.index.to(device)
    if index.shape[0] not in (1, batch):
        raise LocationError(
            f"timestep locations for {index.shape[0]} examples, but the batch has {batch}"
        )
    hit = index.expand(batch, -1) == step
    order = torch.arange(1, hit.shape[1] + 1, device=device)
    return hit, hit.any(1), (hit * order).argmax(1)


def chosen_steps(units: Units) -> frozenset[int]:
    """Every timestep any example chose (python ints: deciding to skip a call needs no sync)."""
    return frozenset(units.index.flatten().tolist())


def fill(buffer: torch.Tensor | None, hit: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``buffer`` (B, U, ...) with ``value`` (B, ...) written at the (b, k) where ``hit``."""
    if buffer is None:
        buffer = value.new_zeros(value.shape[0], hit.shape[1], *value.shape[1:])
    keep = hit.view(*hit.shape, *[1] * (value.dim() - 1))
    return torch.where(keep, value.unsqueeze(1).to(buffer.dtype), buffer)


def write_step(
    x: torch.Tensor, site: HookSite, value: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """A copy of ``x`` whose component holds ``value`` on the rows in ``mask`` (None = all)."""
    old = step_view(x, site)
    if tuple(value.shape) != tuple(old.shape):
        raise DimensionMismatchError(
            f"intervention on {site.component} returned shape {tuple(value.shape)}, expected "
            f"{tuple(old.shape)} (one timestep of the batch)"
        )
    value = value.to(old.dtype)
    if mask is not None:
        value = torch.where(mask.view(-1, *[1] * (old.dim() - 1)), value, old)
    out = x.clone()
    step_view(out, site).copy_(value)
    return out


def out_of_range(key: str, site: HookSite, side: str, step: int, calls: int) -> LocationError:
    """'timestep 7 is out of range: ... ran 5 times, so this forward has 5 timesteps (0..4)'."""
    valid = f"valid timesteps are 0..{calls - 1}" if calls else "it never ran"
    return LocationError(
        f"{key}: {side} timestep {step} is out of range: {site.module_path} ran {calls} "
        f"time(s) in this forward, one per timestep, so it has {calls} timestep(s); {valid}"
    )


def whole_sequence(key: str, site: HookSite, shape: tuple[int, ...]) -> ConfigError:
    """A module path under unit "t" that ran once on a (B, S, ...) tensor is not recurrent."""
    return ConfigError(
        f"{key}: unit 't' (timesteps) needs a module that runs once per timestep, but "
        f"{site.module_path} ran once on a tensor of shape {tuple(shape)} (the whole sequence); "
        "use unit 'pos' for positions"
    )


@dataclass
class StepSource:
    """Source activations of a "t" intervention: ``values`` (Bs, U, D) at each example's
    chosen source timesteps, or (Bs, T, D) at every step when ``every_step``."""

    values: torch.Tensor
    every_step: bool

    def at(self, key: str, step: int, k: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The (B, D) source feeding base timestep ``step`` (``k``: each example's unit)."""
        values = self.values
        if values.shape[0] not in (1, batch):
            raise LocationError(
                f"{key}: the source run has {values.shape[0]} examples, the base {batch}"
            )
        values = values.expand(batch, *values.shape[1:])
        if self.every_step:
            if step >= values.shape[1]:
                raise LocationError(
                    f"{key}: base timestep {step} has no source counterpart: the source run has "
                    f"{values.shape[1]} timesteps (0..{values.shape[1] - 1}); give the source "
                    "timesteps explicitly, e.g. {'sources->base': (t_source, t_base)}"
                )
            return values[:, step]
        if k is None:
            raise LocationError(
                f"{key}: the base selects every timestep (None) but the source selects "
                f"{values.shape[1]} per example; give the base timesteps too, or None on both"
            )
        rows = torch.arange(batch, device=values.device)
        return values[rows, k.to(values.device)]


class StepReader:
    """Reads the "t" source activations of one intervention during a source run."""

    def __init__(self, key: str, site: HookSite, units: Units | None) -> None:
        self.key, self.site, self.units = key, site, units
        self.calls = 0
        self.steps: list[torch.Tensor] = []  # every step, when units is None
        self.buffer: torch.Tensor | None = None  # (B, U, D) at the chosen steps
        self.chosen = None if units is None else chosen_steps(units)

    @property
    def done(self) -> bool:
        return self.units is not None and self.calls > self.units.bounds[1]

    def __call__(self, x: torch.Tensor) -> bool:
        """Record call number ``self.calls``; True once every chosen timestep was read."""
        step, self.calls = self.calls, self.calls + 1
        if self.units is None:
            self.steps.append(step_view(x, self.site).clone())
            return False
        if step in self.chosen:
            value = step_view(x, self.site)
            hit, _, _ = select(self.units, step, value.shape[0], value.device)
            self.buffer = fill(self.buffer, hit, value)
        return self.done

    def result(self) -> StepSource:
        if self.units is None:
            if not self.steps:
                raise PyveneError(f"the source run never ran {self.site.module_path} ({self.key})")
            return StepSource(torch.stack(self.steps, 1), True)
        if not self.done or self.buffer is None:
            raise out_of_range(self.key, self.site, "source", self.units.bounds[1], self.calls)
        return StepSource(self.buffer, False)


class StepAccess:
    """How the setter of a unit "t" intervention (:func:`pyvene.engine.make_setter`) reads
    and writes one timestep: it counts the module's calls, skips calls nobody chose, sees the
    whole batch's (B, D) step and keeps the result on the rows that chose this step; once the
    forward is over it checks the range and hands Collect its result (on ``session``)."""

    def __init__(
        self, slot: Slot, state: CallState, session: HookSession, layout: Layout | None
    ) -> None:
        self.key, self.site, self.state = slot.key, slot.site, state
        site = slot.site
        self.input_site = HookSite(
            site.module, site.module_path, "input", site.component, None, None
        )
        self.calls, self.step, self.batch = 0, 0, 0
        self.shape: tuple[int, ...] = ()  # the hooked tensor's (non-recurrent check)
        self.chosen: dict[int, frozenset[int]] = {}
        self.hit = self.mask = self.k = None  # this call's selection (None: every example)
        self.every: list[torch.Tensor] = []  # Collect at every step (units None)
        self.buffer: torch.Tensor | None = None  # Collect at the chosen steps
        self.collects = contract(slot.intervention).collects
        session.on_exit(self.finish)

    def begin(self, x: torch.Tensor, units: Units | None) -> bool:
        """Count this call; False when no example chose its timestep."""
        self.step, self.calls = self.calls, self.calls + 1
        self.shape = tuple(x.shape)
        if units is None:
            return True
        if id(units) not in self.chosen:
            self.chosen[id(units)] = chosen_steps(units)
        return self.step in self.chosen[id(units)]

    def read(self, rows: torch.Tensor, units: Units | None) -> torch.Tensor:
        base = step_view(rows, self.site).clone()
        self.hit = self.mask = self.k = None
        if units is not None:
            self.hit, self.mask, self.k = select(units, self.step, base.shape[0], base.device)
        self.batch = base.shape[0]
        return base

    def read_input(self, rows: torch.Tensor, units: Units | None) -> torch.Tensor:
        return step_view(rows, self.input_site)

    def source(self, x: torch.Tensor) -> torch.Tensor:
        if self.key not in self.state.sources:
            raise PyveneError(f"{self.key}: no source activation for timestep {self.step}")
        given = self.state.sources[self.key]
        if isinstance(given, StepSource):
            return given.at(self.key, self.step, self.k, self.batch)
        return given

    def keep(self, out: torch.Tensor) -> None:
        if self.hit is None:
            self.every.append(out)
        else:
            self.buffer = fill(self.buffer, self.hit, out)

    def write(self, rows: torch.Tensor, units: Units | None, out: torch.Tensor) -> torch.Tensor:
        return write_step(rows, self.site, out, self.mask)

    def finish(self) -> None:
        """After the forward: a module that ran once on a whole sequence is not recurrent; a
        chosen base timestep must have run; Collect gets its (B, U, D) / (B, T, D) value."""
        site, key, calls, shape = self.site, self.key, self.calls, self.shape
        if calls == 1 and not site.per_step and len(shape) >= 3 and shape[1] > 1:
            raise whole_sequence(key, site, shape)
        units = self.state.base_units.get(key)
        if units is not None and units.bounds[1] >= calls:
            raise out_of_range(key, site, "base", units.bounds[1], calls)
        if self.collects:
            value = torch.stack(self.every, 1) if units is None and self.every else self.buffer
            if value is not None:
                self.state.collected.setdefault(key, []).append(value)
