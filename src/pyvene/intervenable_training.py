"""The training and placement methods of :class:`~pyvene.intervenable.IntervenableModel`
(a mixin: they read the model's public ``plan``, ``model`` and ``interventions``):
trainable parameters, gradients on or off, train / eval modes, temperatures, devices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .devices import is_dispatched
from .errors import DeviceError
from .interventions.contract import contract

if TYPE_CHECKING:
    from .intervention_table import InterventionDict
    from .plan import InterventionPlan


class TrainingMethods:
    """Mixed into IntervenableModel (an ``nn.Module`` with ``plan``, ``model`` and
    ``interventions``)."""

    plan: InterventionPlan
    model: nn.Module
    interventions: InterventionDict
    training: bool

    def get_trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of trainable interventions, then model weights that require grad."""
        params = [
            p
            for i in self.plan.unique_interventions()
            if contract(i).trainable
            for p in i.parameters()
        ]
        return params + [p for p in self.model.parameters() if p.requires_grad]

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate=True):
        """Only what training should touch: intervention parameters and unfrozen weights."""
        seen: set[int] = set()
        for key, i in self.interventions.items():
            for name, p in i.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield f"{prefix}interventions.{key}.{name}", p
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                yield f"{prefix}model.{name}", p

    def count_parameters(self, include_model: bool = False) -> int:
        """Trainable intervention parameters (each linked intervention once), plus the
        model weights that require grad with ``include_model``."""
        total = sum(
            p.numel()
            for i in self.plan.unique_interventions()
            if contract(i).trainable
            for p in i.parameters()
            if p.requires_grad
        )
        if include_model:
            total += sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return total

    def disable_model_gradients(self) -> None:
        """Freeze the model: ``eval()`` and ``requires_grad=False`` on every weight."""
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def enable_model_gradients(self) -> None:
        """Unfreeze the model: ``train()`` and ``requires_grad=True`` on every weight."""
        self.model.train()
        for p in self.model.parameters():
            p.requires_grad_(True)

    def disable_intervention_gradients(self) -> None:
        """Original-API placeholder: does nothing, as in the original (which never
        implemented it). Freeze an intervention with ``requires_grad_(False)`` on it, e.g.
        ``pvm.interventions[key].requires_grad_(False)``."""

    def set_temperature(self, temp: float | torch.Tensor) -> None:
        """Set the temperature of every intervention that has one (Boundless, SigmoidMask)."""
        for i in self.plan.unique_interventions():
            if hasattr(i, "set_temperature"):
                i.set_temperature(temp)

    def set_zero_grad(self) -> None:
        """Zero the gradients of the trainable interventions."""
        for i in self.plan.unique_interventions():
            if contract(i).trainable:
                i.zero_grad()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients of every intervention (the model's weights are frozen)."""
        for i in self.plan.unique_interventions():
            i.zero_grad(set_to_none=set_to_none)

    def train(self, mode: bool = True) -> Any:
        """Training mode for the model and every intervention."""
        self.training = mode
        self.model.train(mode)
        for i in self.plan.unique_interventions():
            i.train(mode)
        return self

    def eval(self) -> Any:
        """Evaluation mode for the model and every intervention."""
        return self.train(False)

    def place_on_sites(self, default: Any = None) -> None:
        """Move every intervention to the device its site runs on (dtype kept); sites whose
        device is unknown (no weights) use ``default`` when given."""
        self.plan.place(self.model, default)

    def set_device(self, device: Any, set_model: bool = True) -> None:
        """Move the model to ``device`` (``set_model=True``), then each intervention to its
        site's device. A model dispatched by accelerate (``hf_device_map``, offload hooks)
        keeps its device map: ``set_model=True`` is refused there."""
        if set_model:
            if is_dispatched(self.model):
                raise DeviceError(
                    f"set_device({device!r}, set_model=True): this model is dispatched by "
                    "accelerate (hf_device_map / offload hooks), and moving it would break its "
                    "device map; use set_device(..., set_model=False) (interventions follow "
                    "their sites) or move the model with accelerate"
                )
            self.model.to(device)
        self.place_on_sites(default=device)

    def get_device(self) -> torch.device:
        """The device of the first site with a known device (never a ``meta`` parameter)."""
        for device in self.plan.site_devices.values():
            if device is not None:
                return device
        real = (p.device for p in self.model.parameters() if p.device.type != "meta")
        return next(real, torch.device("cpu"))


__all__ = ["TrainingMethods"]
