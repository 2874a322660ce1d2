"""Introspection: what a model's family table offers, resolved on the model itself
(module path, hook side, width, head split), and a registry-wide listing for docs."""

from __future__ import annotations

from typing import Any

from torch import nn

from . import FAMILIES, family_of, resolve_site
from .base import Family


def list_components(model: nn.Module, layer: int = 0) -> list[dict[str, Any]]:
    """One row per component of ``model``'s family at ``layer`` (layer 0 for components
    with a single layer): name, module path, hook side, width (per head for head components),
    heads, fused slice, doc. Empty when the model type has no table."""
    family = family_of(model)
    if family is None:
        return []
    rows = []
    for name in sorted(family.components):
        n_layers = family.layers_of(name, model.config)
        site = resolve_site(model, min(layer, n_layers - 1), name)
        rows.append(
            {
                "component": name,
                "module": site.module_path,
                "module_type": type(site.module).__name__,
                "hook": site.hook,
                "dim": site.dim,
                "heads": site.heads,
                "part": site.part,
                "layers": n_layers,
                "doc": family.components[name].doc,
            }
        )
    return rows


def format_components(model: nn.Module, layer: int = 0) -> str:
    """:func:`list_components` as an aligned text table."""
    rows = list_components(model, layer)
    if not rows:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        return f"model type {model_type!r} has no component table; use module paths"
    head = ("component", "module", "hook", "dim", "heads", "part")
    table = [head] + [tuple("" if r[k] is None else str(r[k]) for k in head) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def families() -> dict[str, Family]:
    """Each registered family once, keyed by its name."""
    return {f.name: f for f in FAMILIES.values()}


def family_rows(family: Family) -> list[dict[str, Any]]:
    """Declarative rows of a family table (no model needed): path template, root, config."""
    rows = []
    for name in sorted(family.components):
        spec = family.components[name]
        root = family.component_root(name)
        rows.append(
            {
                "component": name,
                "path": spec.path,
                "root": " | ".join(root),
                "config": family.component_config_path(name),
                "hook": spec.hook,
                "part": spec.part is not None,
                "heads": spec.heads is not None,
                "tokens_from": spec.tokens_from,
                "doc": spec.doc,
            }
        )
    return rows
