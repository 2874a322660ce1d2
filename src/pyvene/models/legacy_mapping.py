"""The original's global registries ``pv.type_to_module_mapping`` and
``pv.type_to_dimension_mapping`` (SPEC B §5.1-5.2): dicts keyed by the model **class** (exact
type) that users extend for an architecture without a family table::

    pv.type_to_module_mapping[type(t5)] = {
        "mlp_output": ("encoder.block[%s].layer[1]", CONST_OUTPUT_HOOK),
        "head_attention_value_output": ("encoder.block[%s].layer[0].SelfAttention.o",
                                        CONST_INPUT_HOOK),
    }
    pv.type_to_dimension_mapping[type(t5)] = {"mlp_output": ("d_model",),
                                              "head_attention_value_output": ("d_kv",)}

A module entry is ``(path_template, hook_type, *splits)``: ``template % layer`` with ``name[i]``
indexing, ``CONST_INPUT_HOOK`` / ``CONST_OUTPUT_HOOK``, and up to two ``(split_fn, param)``
pairs (``split_three`` / ``split_half`` with a part index, ``split_part`` with a ``(start,
end)`` slice, ``split_head_and_permute`` with a head count). ``head_*`` components without a
head split are split into the config's heads (key / value: its key-value heads). A dimension
entry is a tuple of proposals (``"d_model"``, ``"n_embd*4"``, ``"hidden_size/num_heads"``,
dotted paths) tried in order; the first that is set wins.

Classes our family tables cover read as generated entries (see :mod:`.legacy_registry`); the
tables stay the source of truth until a user assigns an entry, after which :func:`legacy_site`
resolves that component from the registries (a width-only change keeps the table's site).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from torch import nn

from ..errors import ConfigError, LayerOutOfRangeError, UnknownComponentError, closest
from ..families import (
    HookSite,
    family_of,
    is_module_path,
    register_site_resolver,
    resolve_table_site,
)
from ..families.base import Interleaved, num_heads, num_kv_heads
from .constants import (
    CONST_INPUT_HOOK,
    CONST_OUTPUT_HOOK,
    split_half,
    split_head_and_permute,
    split_part,
    split_three,
)
from .legacy_registry import type_to_dimension_mapping, type_to_module_mapping

_HOOKS = {
    CONST_INPUT_HOOK: "input",
    CONST_OUTPUT_HOOK: "output",
    "input": "input",
    "output": "output",
}


def _config_attr(config: Any, path: str, proposal: Any) -> Any:
    value = config
    for name in path.split("."):
        if not hasattr(value, name):
            raise ConfigError(
                f"dimension proposal {proposal!r}: {type(value).__name__} has no attribute {name!r}"
            )
        value = getattr(value, name)
    return value


def evaluate_proposal(proposal: Any, config: Any) -> int | None:
    """One proposal: an int, a table value, or ``a*b/c`` over config attributes (left to
    right, division truncated after each step). None when an attribute is set to None."""
    if isinstance(proposal, bool):
        raise ConfigError(f"dimension proposal {proposal!r} is not an int or expression")
    if isinstance(proposal, int):
        return proposal
    if callable(proposal):
        value = proposal(config)
        return None if value is None else int(value)
    if not isinstance(proposal, str) or not proposal.strip():
        raise ConfigError(
            f"dimension proposal {proposal!r} must be an int or a string like 'hidden_size', "
            "'n_embd*4' or 'hidden_size/num_attention_heads'"
        )
    tokens = re.split(r"([*/])", proposal.replace(" ", ""))
    result = None
    for i in range(0, len(tokens), 2):
        token = tokens[i]
        if token.isdigit():
            value = int(token)
        elif token:
            value = _config_attr(config, token, proposal)
        else:
            raise ConfigError(f"dimension proposal {proposal!r} is malformed")
        if value is None:
            return None
        value = int(value)
        if i == 0:
            result = value
        elif tokens[i - 1] == "*":
            result = result * value
        else:
            result = int(result / value)
    return result


def evaluate_dimension(cls: type, config: Any, component: str) -> int | None:
    """Width of ``component`` from ``pv.type_to_dimension_mapping`` (None: no entry)."""
    entry = type_to_dimension_mapping.lookup(cls, component)
    if entry is None:
        return None
    proposals = entry if isinstance(entry, (tuple, list)) else (entry,)
    for proposal in proposals:
        value = evaluate_proposal(proposal, config)
        if value is not None:
            return value
    raise ConfigError(
        f"pv.type_to_dimension_mapping[{cls.__name__}][{component!r}]: none of the "
        f"proposals {tuple(proposals)} is set in {type(config).__name__}"
    )


def _param(cls: type, config: Any, param: Any) -> Any:
    """A split parameter: a name of the dimension registry ("n_head"), an expression over
    the config, an int, or a table value."""
    if isinstance(param, str) and type_to_dimension_mapping.lookup(cls, param) is not None:
        return evaluate_dimension(cls, config, param)
    if isinstance(param, str):
        return evaluate_proposal(param, config)
    return param(config) if callable(param) else param


def _default_heads(cls: type, config: Any, component: str) -> int:
    kv = component in ("head_key_output", "head_value_output")
    for helper in ("n_kv_head", "n_head") if kv else ("n_head",):
        if type_to_dimension_mapping.lookup(cls, helper) is not None:
            return evaluate_dimension(cls, config, helper)
    try:
        return num_kv_heads(config) if kv else num_heads(config)
    except AttributeError:
        raise ConfigError(
            f"{component!r} of {cls.__name__} splits heads, but the config has no "
            "num_attention_heads / n_head / num_heads; add an 'n_head' entry to "
            "pv.type_to_dimension_mapping or a (split_head_and_permute, heads) split"
        ) from None


_PART_SPLITS = {split_three: 3, split_half: 2}
_SPLIT_NAMES = "split_three, split_half, split_part, split_head_and_permute"


def _read_splits(
    cls: type, config: Any, splits: tuple, where: str
) -> tuple[tuple[int, int] | Interleaved | None, tuple[int, int] | None, int | None]:
    """``(part, (index, n) of an equal-parts split, heads)`` of an entry's splits."""
    part, thirds, heads = None, None, None
    for split in splits:
        if not (isinstance(split, (tuple, list)) and len(split) == 2):
            raise ConfigError(f"{where}: a split is a (split_fn, param) pair, got {split!r}")
        fn, param = split[0], _param(cls, config, split[1])
        if fn in _PART_SPLITS:
            thirds = (int(param), _PART_SPLITS[fn])
        elif fn is split_part:
            part = param if isinstance(param, Interleaved) else (int(param[0]), int(param[1]))
        elif fn is split_head_and_permute:
            heads = int(param)
        else:
            name = getattr(fn, "__name__", fn)
            raise ConfigError(f"{where}: unsupported split {name!r}; supported: {_SPLIT_NAMES}")
    return part, thirds, heads


def entry_layout(
    cls: type, config: Any, component: str
) -> tuple[int | None, tuple[int, int] | None, int | None] | None:
    """``(dim, part, heads)`` of ``component`` per the registries (None: no module entry)."""
    entry = type_to_module_mapping.lookup(cls, component)
    if entry is None:
        return None
    where = f"pv.type_to_module_mapping[{cls.__name__}][{component!r}]"
    if not isinstance(entry, (tuple, list)) or len(entry) < 2 or not isinstance(entry[0], str):
        raise ConfigError(f"{where} must be (path_template, hook_type, *splits), got {entry!r}")
    splits = entry[2:]
    if len(splits) > 2:
        raise ConfigError(f"{where}: at most 2 splits are supported, got {len(splits)}")
    dim = evaluate_dimension(cls, config, component)
    part, thirds, heads = _read_splits(cls, config, splits, where)
    if heads is None and component.startswith("head_"):
        heads = _default_heads(cls, config, component)
    if thirds is not None:
        index, n = thirds
        if dim is None:
            raise ConfigError(
                f"{where} selects part {index} of {n} and needs a width: add "
                f"pv.type_to_dimension_mapping[{cls.__name__}][{component!r}]"
            )
        if not 0 <= index < n:
            raise ConfigError(f"{where}: part index {index} is out of range (0..{n - 1})")
        width = dim * (heads or 1)
        part = (index * width, (index + 1) * width)
    return dim, part, heads


def _fill(template: str, layer: Any, where: str) -> str:
    count = template.count("%s")
    if count > 1:
        raise ConfigError(f"{where}: templates with a moe_key ({template!r}) are not supported")
    if count == 1:
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise LayerOutOfRangeError(f"{where}: layer must be an int, got {layer!r}")
        template = template % layer
    return re.sub(r"\[(-?\d+)\]", r".\1", template)


def _find_module(model: nn.Module, entry: Any, layer: Any, where: str) -> tuple[nn.Module, str]:
    templates = getattr(entry, "alternatives", None) or (entry[0],)
    for template in templates:
        path = _fill(template, layer, where)
        try:
            return model.get_submodule(path), path
        except AttributeError:
            continue
    path = _fill(templates[0], layer, where)
    if "%s" in templates[0] and layer != 0:
        try:
            model.get_submodule(_fill(templates[0], 0, where))
        except AttributeError:
            pass
        else:
            raise LayerOutOfRangeError(
                f"layer {layer!r} is out of range for {where}: {path!r} does not exist"
            )
    names = [n for n, _ in model.named_modules() if n]
    near = closest(path, names, n=5)
    hint = f" Closest module names: {', '.join(near)}." if near else ""
    raise UnknownComponentError(f"{where} names module {path!r}, which does not exist.{hint}")


def _table_site_with_dim(model: nn.Module, layer: Any, component: str, dim: int) -> HookSite:
    """The family table's site (exact: roots, fused parts, token views, timesteps) with a
    user-assigned width."""
    return dataclasses.replace(resolve_table_site(model, layer, component), dim=dim)


def legacy_site(model: nn.Module, layer: Any, component: str) -> HookSite | None:
    """The site of ``component`` when ``type(model)`` has a user-assigned entry for it in
    either registry; None when the family table (or module path) should resolve it."""
    cls = type(model)
    user_module = type_to_module_mapping.user_value(cls, component)
    user_dim = type_to_dimension_mapping.user_value(cls, component)
    family = family_of(model)
    if user_module is None and user_dim is not None and family and component in family.components:
        config = getattr(model, "config", None)
        return _table_site_with_dim(
            model, layer, component, evaluate_dimension(cls, config, component)
        )
    if user_module is None and user_dim is None:
        if (
            type_to_module_mapping.has_user_entries(cls)
            and family is None
            and not is_module_path(component)
        ):
            known = sorted(type_to_module_mapping[cls])
            raise UnknownComponentError(
                f"component {component!r} is not registered for {cls.__name__} in "
                f"pv.type_to_module_mapping; registered: {', '.join(known)}. Any module also "
                "works by path: '<module path>.input' or '.output'."
            )
        return None
    where = f"pv.type_to_module_mapping[{cls.__name__}][{component!r}]"
    entry = type_to_module_mapping.lookup(cls, component)
    if entry is None:
        raise UnknownComponentError(
            f"{component!r} has a pv.type_to_dimension_mapping entry for {cls.__name__} but "
            f"no module entry: add {where} = (path_template, hook_type)"
        )
    config = getattr(model, "config", None)
    dim, part, heads = entry_layout(cls, config, component)
    hook = _HOOKS.get(entry[1]) if isinstance(entry[1], str) else None
    if hook is None:
        raise ConfigError(
            f"{where}: hook type {entry[1]!r} is not supported; valid: CONST_INPUT_HOOK "
            f"({CONST_INPUT_HOOK!r}), CONST_OUTPUT_HOOK ({CONST_OUTPUT_HOOK!r})"
        )
    module, path = _find_module(model, entry, layer, where)
    return HookSite(module, path, hook, component, layer, dim, part, heads)


register_site_resolver(legacy_site)

__all__ = [
    "entry_layout",
    "evaluate_dimension",
    "evaluate_proposal",
    "legacy_site",
    "type_to_dimension_mapping",
    "type_to_module_mapping",
]
