"""Placement: which device each hook site computes on, and putting interventions and per-call
tensors there.

Why: under accelerate (``device_map="auto"``, ``cpu_offload``, disk offload) one model spans
several devices and its first parameter may sit on ``meta``, so "the model's device" does not
exist. Every site is asked separately: :func:`module_device` (the single answer, patched in
tests to fake a device map) looks at accelerate's execution hook on the module or its nearest
ancestor, then at the module's own real (non-meta) parameters and buffers. Interventions move
to their site's device (keeping their dtype); per-call tensors move there once per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import DeviceError

if TYPE_CHECKING:
    from .engine import CallState, Slot


def _execution_device(module: nn.Module) -> torch.device | None:
    """accelerate's ``AlignDevicesHook.execution_device`` on ``module`` (also inside a
    ``SequentialHook``), or None."""
    hook = getattr(module, "_hf_hook", None)
    hooks = getattr(hook, "hooks", None) or ([hook] if hook is not None else [])
    for h in hooks:
        device = getattr(h, "execution_device", None)
        if device is not None:
            return torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    return None


def _real_tensors(module: nn.Module) -> Iterator[torch.Tensor]:
    for t in (*module.parameters(), *module.buffers()):
        if t.device.type != "meta":
            yield t


def module_device(module: nn.Module, ancestors: tuple[nn.Module, ...] = ()) -> torch.device | None:
    """The device ``module`` computes on (None: unknown, e.g. no weights anywhere).

    ``ancestors``: its enclosing modules, innermost first (an accelerate block hook may sit on
    one of them). Raises :class:`DeviceError` when the module's own weights span devices and
    no execution hook says where it runs."""
    for m in (module, *ancestors):
        device = _execution_device(m)
        if device is not None:
            return device
    devices = list(dict.fromkeys(t.device for t in _real_tensors(module)))
    if len(devices) > 1:
        raise DeviceError(
            f"{type(module).__name__} has weights on {devices[0]} and {devices[1]}: a hooked "
            "module must run on one device; keep it whole in the device map (e.g. "
            "no_split_module_classes) or hook a smaller module"
        )
    return devices[0] if devices else None


def ancestors_of(model: nn.Module, path: str) -> tuple[nn.Module, ...]:
    """The modules enclosing ``model.get_submodule(path)``, innermost first (model last)."""
    parts = path.split(".") if path else []
    out = []
    for i in range(len(parts) - 1, 0, -1):
        try:
            out.append(model.get_submodule(".".join(parts[:i])))
        except AttributeError:
            continue
    return (*out, model)


def site_device(model: nn.Module, slot_or_site: Any) -> torch.device | None:
    """The device of a slot's (or HookSite's) module."""
    site = getattr(slot_or_site, "site", slot_or_site)
    return module_device(site.module, ancestors_of(model, site.module_path))


def intervention_device(intervention: nn.Module) -> torch.device | None:
    """The device of an intervention's real weights (None when it has none)."""
    for t in _real_tensors(intervention):
        return t.device
    return None


def place_on_sites(model: nn.Module, slots: list[Slot]) -> dict[str, torch.device | None]:
    """Move every intervention to its site's device (dtype kept); returns key -> device. A
    linked intervention whose sites are on different devices is refused."""
    devices: dict[str, torch.device | None] = {}
    owner: dict[int, tuple[str, torch.device]] = {}
    for slot in slots:
        device = devices[slot.key] = site_device(model, slot)
        if device is None:
            continue
        first = owner.setdefault(id(slot.intervention), (slot.key, device))
        if first[1] != device:
            raise DeviceError(
                f"{slot.key} and {first[0]} share one intervention, but their sites run on "
                f"{device} and {first[1]}: a shared (linked) intervention needs its sites on one "
                "device; change the device map or unlink them"
            )
        if intervention_device(slot.intervention) not in (None, device):
            slot.intervention.to(device)
    return devices


def check_intervention_device(key: str, intervention: nn.Module, device: torch.device) -> None:
    """Raise a :class:`DeviceError` naming both devices when ``intervention``'s first weight
    (``meta`` included) is not on its site's ``device``."""
    first = next(iter((*intervention.parameters(), *intervention.buffers())), None)
    if first is not None and first.device != device:
        raise DeviceError(
            f"{key}: {type(intervention).__name__} has its weights on {first.device}, but its "
            f"site runs on {device}; build it there, or call "
            "IntervenableModel.set_device(device, set_model=False) to place every intervention "
            "on its site's device"
        )


def to_device(value: Any, device: torch.device | None) -> Any:
    """``value`` (tensor, Units, or anything else, returned as is) on ``device``."""
    if device is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.to(device)
    index = getattr(value, "index", None)
    if isinstance(index, torch.Tensor) and hasattr(value, "pos"):  # gather.Units
        from dataclasses import replace

        pos = value.pos.to(device) if value.pos is not None else None
        return replace(value, index=index.to(device), pos=pos)
    return value


def place_call_state(
    state: CallState, devices: dict[str, torch.device | None], slots: list[Slot] = ()
) -> None:
    """Move a call's unit indices and given source tensors to each site's device, once per
    call (then every gather / scatter / decoding step finds them there); check that each of
    ``slots``' interventions is on its site's device."""
    for slot in slots:
        device = devices.get(slot.key)
        if device is not None:
            check_intervention_device(slot.key, slot.intervention, device)
    for key, device in devices.items():
        if device is None:
            continue
        for table in (state.base_units, state.source_units, state.sources):
            if key in table:
                table[key] = to_device(table[key], device)


def input_device(model: nn.Module) -> torch.device:
    """Where the model's input embedding runs (input ids go there); CPU when unknown."""
    emb = model.get_input_embeddings()
    path = next((n for n, m in model.named_modules() if m is emb), "")
    return module_device(emb, ancestors_of(model, path)) or torch.device("cpu")


def real_weight(module: nn.Module, name: str) -> torch.Tensor:
    """``module``'s tensor ``name``; when it is on ``meta`` (offloaded by accelerate), the
    stored copy from the module's offload hook (its weights map: CPU memory or disk)."""
    tensor = getattr(module, name)
    if tensor.device.type != "meta":
        return tensor
    hook = getattr(module, "_hf_hook", None)
    for h in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        weights = getattr(h, "weights_map", None)
        if weights is not None:
            try:
                return weights[name]
            except KeyError:
                continue
    raise DeviceError(
        f"{type(module).__name__}.{name} is on 'meta' and no accelerate offload hook holds its "
        "values; load the model with its weights (or pass noise_level=... explicitly)"
    )


def is_dispatched(model: nn.Module) -> bool:
    """True for a model placed by accelerate (``hf_device_map`` or execution hooks)."""
    if getattr(model, "hf_device_map", None):
        return True
    return any(_execution_device(m) is not None for m in model.modules())
