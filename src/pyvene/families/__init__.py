"""Family registry and site resolution: (model, layer, component) -> a HookSite naming the
module, the hook side, the slice of the last dim, the head split and the width.

Any module of any nn.Module also works by path: ``"h.3.mlp.output"`` or ``"h[3].mlp.input"``.
Other resolvers (the original API's ``pv.type_to_module_mapping``, in :mod:`pyvene.models`)
plug in through :func:`register_site_resolver`; this package never imports them.

HookSite: one resolved place to hook (module, side, last-dim slice, head split, width).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import LayerOutOfRangeError, UnknownComponentError, closest
from ..hooks import Side
from .base import Component, Family, Interleaved, sub_config
from .blip import BLIP
from .encoders import BERT, ESM
from .gpt2 import GPT2
from .gpt_neo import GPT_NEO
from .gpt_neox import GPT_NEOX
from .llama import LLAMA
from .llava import LLAVA
from .mamba import MAMBA
from .mixtral import MIXTRAL
from .opt import OPT
from .phi import PHI, PHI3
from .research import GRU, MLP
from .whisper import WHISPER

FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make ``family`` serve every ``config.model_type`` it lists."""
    for model_type in family.model_types:
        FAMILIES[model_type] = family
    return family


for _family in (
    GPT2, LLAMA, GPT_NEO, GPT_NEOX, MIXTRAL, PHI, PHI3, OPT, BERT, ESM, MAMBA, BLIP, LLAVA,
    WHISPER, MLP, GRU,
):  # fmt: skip
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
    part: tuple[int, int] | Interleaved | None = None
    heads: int | None = None
    per_step: bool = False  # runs once per timestep (a recurrent cell): unit "t" only

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
    """The registered family table for ``model.config.model_type``, or None (then components
    are module paths)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    return FAMILIES.get(model_type) if model_type else None


def components_of(model: nn.Module) -> list[str]:
    """Sorted abstract component names of ``model``'s family (empty without a family); used in
    error messages and CLI checks."""
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


def _find_root(base: nn.Module, roots: tuple[str, ...], family: Family, component: str) -> str:
    """The first candidate root module that exists in ``base`` ("" = the base model)."""
    if not roots:
        return ""
    for root in roots:
        try:
            base.get_submodule(root)
        except AttributeError:
            continue
        return root
    raise UnknownComponentError(
        f"{component!r} of the {family.name} table lives under "
        f"{' or '.join(map(repr, roots))}, which {type(base).__name__} does not have"
    )


# components only some families have, and why the others do not
_ELSEWHERE = {
    "attention_weight": (
        "attention_weight (the post-softmax attention probabilities) exists for GPT-2 only "
        "(its attn_dropout module); other families compute them inside an attention function "
        "with no module to hook. Read them with output_attentions=True"
    ),
}


def missing_component_message(model: nn.Module, family: Family, component: str) -> str:
    """'mamba models have no component 'attention_output'. Their components: ...'."""
    model_type = getattr(getattr(model, "config", None), "model_type", family.name)
    names = sorted(family.components)
    near = closest(component, names)
    kind = model_type if model_type == family.name else f"{model_type} ({family.name} table)"
    msg = f"{kind} models have no component {component!r}. Their components: {', '.join(names)}."
    note = family.notes.get(component) or _ELSEWHERE.get(component)
    if note:
        msg += f" {note}."
    elif near:
        msg += f" Did you mean {' or '.join(repr(n) for n in near)}?"
    return msg + " Any module also works by path: '<module path>.input' or '.output'."


SiteResolver = Callable[[nn.Module, Any, str], "HookSite | None"]
_RESOLVERS: list[SiteResolver] = []


def register_site_resolver(resolver: SiteResolver) -> SiteResolver:
    """Ask ``resolver(model, layer, component)`` before the family tables on every lookup; it
    returns a HookSite, or None to pass. Registering the same function twice is a no-op."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)
    return resolver


def resolve_site(model: nn.Module, layer: int, component: str) -> HookSite:
    """Resolve a component: registered resolvers first, then the family table or a module
    path (:func:`resolve_table_site`); the family's ``on_site`` then sees the module."""
    site = None
    for resolver in _RESOLVERS:
        site = resolver(model, layer, component)
        if site is not None:
            break
    if site is None:
        site = resolve_table_site(model, layer, component)
    family = family_of(model)
    if family is not None and family.on_site is not None:
        family.on_site(model, site.module)
    return site


def resolve_table_site(model: nn.Module, layer: int, component: str) -> HookSite:
    """Resolve an abstract component via the family table, or a module path."""
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
        raise UnknownComponentError(missing_component_message(model, family, component))
    spec: Component = family.components[component]
    config = sub_config(model.config, family.component_config_path(component))
    n_layers = family.layers_of(component, model.config)
    if not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise LayerOutOfRangeError(
            f"layer {layer!r} is out of range for {component!r}: this model has {n_layers} "
            f"layers (0..{n_layers - 1})"
        )
    base, prefix = base_model_of(model)
    root = _find_root(base, family.component_root(component), family, component)
    path = spec.path.format(layer=layer)
    if root:
        path = f"{root}.{path}"
    try:
        module = base.get_submodule(path)
    except AttributeError as err:
        raise UnknownComponentError(
            f"{component!r} of the {family.name} table names module {path!r}, which "
            f"{type(model).__name__} does not have ({err})"
        ) from None
    full = f"{prefix}.{path}" if prefix else path
    part = spec.part(config) if spec.part else None
    heads = spec.heads(config) if spec.heads else None
    hook = spec.hook
    if spec.tokens_from:  # token-flattened (B * S, W) tensors: hooks see (B, S, W), see Side
        outer = spec.tokens_from.format(layer=layer)
        hook = Side(hook, base.get_submodule(f"{root}.{outer}" if root else outer))
    return HookSite(
        module, full, hook, component, layer, spec.dim(config), part, heads, spec.per_step
    )


__all__ = [
    "FAMILIES",
    "Family",
    "Component",
    "HookSite",
    "register_family",
    "register_site_resolver",
    "resolve_site",
    "resolve_table_site",
    "components_of",
    "family_of",
    "base_model_of",
]
