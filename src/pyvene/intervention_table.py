"""The intervention table of an IntervenableModel: the key -> intervention ``ModuleDict`` (with
the seeds' key aliases and the original's ``interventions[key] = module`` replacement), the
original's key format, and building an intervention from a class, an instance or a
function."""

from __future__ import annotations

import re
import types
from typing import Any

from torch import nn

from .config import RepresentationConfig
from .engine import Slot
from .errors import ConfigError, UnknownKeyError, choices_message
from .interventions.basic import LambdaIntervention
from .interventions.contract import construct


class InterventionDict(nn.ModuleDict):
    """key -> intervention. Also accepts the seeds' dotted keys
    (``"layer.6.comp.block_output.unit.pos.nunit.1#0"``) and short ones (``"layer.6.block_output"``)."""

    def resolve(self, key: str) -> str:
        if key in self._modules:
            return key
        alias = str(key).replace(".", "_")
        if alias in self._modules:
            return alias
        m = re.match(r"^layer[._](\d+)[._](?:comp[._]|repr[._])?(.+?)(?:[._]unit[._].*)?$", key)
        if m:
            prefix = f"layer_{m.group(1)}_comp_{m.group(2).replace('.', '_')}_unit_"
            hits = [k for k in self._modules if k.startswith(prefix)]
            if len(hits) == 1:
                return hits[0]
        raise UnknownKeyError(choices_message("intervention key", key, list(self._modules)))

    def __getitem__(self, key: str | int) -> nn.Module:
        if isinstance(key, int):
            return list(self._modules.values())[key]
        return self._modules[self.resolve(key)]

    def __contains__(self, key: object) -> bool:
        try:
            self.resolve(key)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            return False
        return True

    def seal(self, on_replace: SlotUpdater) -> None:
        """From now on ``table[key] = m`` only replaces existing keys, and calls
        ``on_replace(key, m)`` (kept outside ``_modules``: it is not a submodule)."""
        self.__dict__["_on_replace"] = on_replace

    def __setitem__(self, key: str, module: nn.Module) -> None:
        """Before the owner seals the table: add. After: replace an existing key's
        intervention, effective from the next call (the original's ``interventions[key] = m``,
        e.g. to wrap one in DistributedDataParallel); anything else is refused."""
        on_replace = self.__dict__.get("_on_replace")
        if on_replace is None:
            super().__setitem__(key, module)
            return
        if not isinstance(module, nn.Module):
            raise ConfigError(
                f"interventions[{key!r}] must be an nn.Module (an intervention instance), got "
                f"{type(module).__name__}; wrap a function in pyvene.LambdaIntervention"
            )
        try:
            key = self.resolve(key)
        except KeyError:
            raise ConfigError(
                choices_message("intervention key", key, list(self._modules))
                + " Replacing works for existing keys; add interventions through the config."
            ) from None
        super().__setitem__(key, module)
        on_replace(key, module)


def make_key(rep: RepresentationConfig, seen: dict[str, int]) -> str:
    """The original's key: ``layer_{l}_comp_{c}_unit_{u}_nunit_{n}#{k}``."""
    unit = rep.unit.replace(".", "_")
    if "." in rep.component:
        stem = f"comp_{rep.component.replace('.', '_')}_unit_{unit}_nunit_{rep.max_number_of_units}"
    else:
        stem = f"layer_{rep.layer}_comp_{rep.component}_unit_{unit}_nunit_{rep.max_number_of_units}"
    k = seen.get(stem, 0)
    seen[stem] = k + 1
    return f"{stem}#{k}"


def build_intervention(spec: Any, rep: RepresentationConfig, embed_dim: int | None) -> nn.Module:
    """An instance from a class, an instance, or a plain function."""
    if isinstance(spec, (types.FunctionType, types.LambdaType, types.MethodType)):
        return LambdaIntervention(spec, embed_dim=embed_dim)
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        return construct(spec, rep._asdict(), embed_dim)
    raise ConfigError(
        f"intervention {spec!r} is neither an intervention class, an nn.Module instance nor a "
        "function f(base, source)"
    )


class SlotUpdater:
    """Points the slot of a replaced key at its new intervention (a plain callable holding
    the slot list, so copies of the model that share the list stay in step)."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots

    def __call__(self, key: str, module: nn.Module) -> None:
        for slot in self.slots:
            if slot.key == key:
                slot.intervention = module


__all__ = ["InterventionDict", "SlotUpdater", "build_intervention", "make_key"]
