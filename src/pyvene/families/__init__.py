"""Family registry and site resolution: (model, layer, component) -> a HookSite naming the
module, the hook side, the slice of the last dim, the head split and the width.

Any module of any nn.Module also works by path: ``"h.3.mlp.output"`` or ``"h[3].mlp.input"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from ..errors import LayerOutOfRangeError, UnknownComponentError, choices_message, closest
from .base import Component, Family
from .gpt2 import GPT2
from .llama import LLAMA

FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make ``family`` serve every ``config.model_type`` it lists."""
    for model_type in family.model_types:
        FAMILIES[model_type] = family
    return family


for _family in (GPT2, LLAMA):
    register_family(_family)


@dataclass
class HookSite:
    """A resolved place to hook: ``module``'s input or output, the ``[start, end)`` slice of
    its last dim (None = all), split into ``heads`` heads of ``dim`` each (None = no split)."""

    module: nn.Module
    module_path: str
    hook: str
    component: str
    layer: int | None
    dim: int | None
    part: tuple[int, int] | None = None
    heads: int | None = None

    @property
    def is_head(self) -> bool:
        return self.heads is not None


def base_model_of(model: nn.Module) -> tuple[nn.Module, str]:
    """The HF base model (``model.base_model``) and its attribute path inside ``model``."""
    prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, prefix, None) if prefix else None
    if isinstance(base, nn.Module):
        return base, prefix
    return model, ""


def family_of(model: nn.Module) -> Family | None:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    return FAMILIES.get(model_type) if model_type else None


def components_of(model: nn.Module) -> list[str]:
    family = family_of(model)
    return sorted(family.components) if family else []


_PATH_RE = re.compile(r"\[(\d+)\]")


def is_module_path(component: str) -> bool:
    return component.endswith((".input", ".output")) and "." in component[:-1]


def _resolve_path(model: nn.Module, component: str) -> HookSite:
    path, hook = component.rsplit(".", 1)
    path = _PATH_RE.sub(r".\1", path)
    for root, prefix in ((model, ""), base_model_of(model)):
        try:
            module = root.get_submodule(path)
        except AttributeError:
            continue
        full = f"{prefix}.{path}" if prefix else path
        return HookSite(module, full, hook, component, None, None)
    names = [n for n, _ in model.named_modules() if n]
    near = closest(path, names, n=5)
    hint = f" Closest module names: {', '.join(near)}." if near else ""
    raise UnknownComponentError(f"module path {path!r} does not exist in the model.{hint}")


def resolve_site(model: nn.Module, layer: int, component: str) -> HookSite:
    """Resolve an abstract component (via the family table) or a module path."""
    family = family_of(model)
    if family is None or component not in family.components:
        if is_module_path(component):
            return _resolve_path(model, component)
        if family is None:
            model_type = getattr(getattr(model, "config", None), "model_type", None)
            raise UnknownComponentError(
                f"component {component!r}: model type {model_type!r} has no component table "
                f"(tables: {', '.join(sorted(FAMILIES))}). Use a module path such as "
                "'encoder.layer.3.output.output' (module path + '.input' or '.output')."
            )
        raise UnknownComponentError(
            choices_message(f"component of {family.name} models", component, family.components)
            + " A module path ending in '.input'/'.output' also works."
        )
    spec: Component = family.components[component]
    config = model.config
    n_layers = family.num_layers(config)
    if not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise LayerOutOfRangeError(
            f"layer {layer!r} is out of range for {component!r}: this model has {n_layers} "
            f"layers (0..{n_layers - 1})"
        )
    base, prefix = base_model_of(model)
    path = spec.path.format(layer=layer)
    module = base.get_submodule(path)
    full = f"{prefix}.{path}" if prefix else path
    part = spec.part(config) if spec.part else None
    heads = spec.heads(config) if spec.heads else None
    return HookSite(module, full, spec.hook, component, layer, spec.dim(config), part, heads)


__all__ = [
    "FAMILIES",
    "Family",
    "Component",
    "HookSite",
    "register_family",
    "resolve_site",
    "components_of",
    "family_of",
    "base_model_of",
]
