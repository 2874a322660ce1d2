"""The class-keyed registries ``pv.type_to_module_mapping`` / ``pv.type_to_dimension_mapping``
(SPEC B §5.1-5.2) as mutable mappings: entries users assign, plus generated entries for the
classes our family tables cover (built on first read from the table, whose values evaluate the
table itself). How an entry resolves to a hook site is in :mod:`.legacy_mapping`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from ..errors import ConfigError
from ..families import FAMILIES
from ..families.base import Family, sub_config
from .constants import (
    CONST_INPUT_HOOK,
    CONST_OUTPUT_HOOK,
    split_head_and_permute,
    split_part,
)

_TO_HOOK = {"input": CONST_INPUT_HOOK, "output": CONST_OUTPUT_HOOK}


class TableValue:
    """A value of a family table (width, head count, fused slice) evaluated on the model
    config (or its ``config_path`` sub-config): the generated entries' proposals and params."""

    def __init__(self, fn: Callable[[Any], Any], config_path: str, label: str) -> None:
        self.fn, self.config_path, self.label = fn, config_path, label

    def __call__(self, config: Any) -> Any:
        return self.fn(sub_config(config, self.config_path))

    def __repr__(self) -> str:
        return f"<table {self.label}>"


class TableEntry(tuple):
    """A generated module entry; ``alternatives`` are the templates tried in order (the base
    model prefix and multi-tower roots are known only on an instance)."""

    alternatives: tuple[str, ...]

    def __new__(cls, items: tuple, alternatives: tuple[str, ...]) -> TableEntry:
        entry = super().__new__(cls, items)
        entry.alternatives = alternatives
        return entry


def _covering_family(cls: type) -> tuple[Family | None, str | None]:
    model_type = getattr(getattr(cls, "config_class", None), "model_type", None)
    return (FAMILIES.get(model_type) if model_type else None), model_type


def _class_prefix(cls: type, model_type: str) -> str:
    """Attribute path of the base model inside an instance of ``cls`` ("" for the base
    model class itself, known from transformers' auto mapping)."""
    prefix = getattr(cls, "base_model_prefix", "") or ""
    if not prefix:
        return ""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    names = MODEL_MAPPING_NAMES.get(model_type, ())
    names = (names,) if isinstance(names, str) else tuple(names)
    return "" if cls.__name__ in names else prefix


def _template(*parts: str) -> str:
    """``"h.{layer}.attn"`` under ``"transformer"`` -> ``"transformer.h[%s].attn"``."""
    path = ".".join(p for p in parts if p).replace("{layer}", "%s")
    return re.sub(r"\.(%s|\d+)(?=\.|$)", r"[\1]", path)


def _module_table(cls: type) -> dict[str, Any] | None:
    family, model_type = _covering_family(cls)
    if family is None:
        return None
    prefix = _class_prefix(cls, model_type)
    prefixes = (prefix, "") if prefix else ("",)
    table: dict[str, Any] = {}
    for name, spec in family.components.items():
        roots = family.component_root(name) or ("",)
        alternatives = tuple(_template(p, r, spec.path) for r in roots for p in prefixes)
        cfg = family.component_config_path(name)
        splits: list[tuple[Any, Any]] = []
        if spec.part is not None:
            splits.append((split_part, TableValue(spec.part, cfg, f"{family.name}.{name} part")))
        if spec.heads is not None:
            label = f"{family.name}.{name} heads"
            splits.append((split_head_and_permute, TableValue(spec.heads, cfg, label)))
        items = (alternatives[0], _TO_HOOK[spec.hook], *splits)
        table[name] = TableEntry(items, alternatives)
    return table


def _dimension_table(cls: type) -> dict[str, Any] | None:
    family, _ = _covering_family(cls)
    if family is None:
        return None
    return {
        name: (TableValue(spec.dim, family.component_config_path(name), f"{family.name}.{name}"),)
        for name, spec in family.components.items()
    }


class ClassRegistry(MutableMapping):
    """model class -> {component: entry}. Assigned classes hold the user's dict itself (later
    edits to it count); covered classes get a generated dict on first read, whose items the
    user may overwrite or extend."""

    def __init__(self, name: str, build: Callable[[type], dict[str, Any] | None]) -> None:
        self._name, self._build = name, build
        self._user: dict[type, dict[str, Any]] = {}
        self._built: dict[type, dict[str, Any]] = {}
        self._snapshot: dict[type, dict[str, Any]] = {}

    def __getitem__(self, cls: type) -> dict[str, Any]:
        if cls in self._user:
            return self._user[cls]
        if cls not in self._built:
            table = self._build(cls) if isinstance(cls, type) else None
            if table is None:
                raise KeyError(
                    f"pv.{self._name} has no entry for {getattr(cls, '__name__', cls)!r}; add "
                    f"one with pv.{self._name}[type(model)] = {{component: ...}}"
                )
            self._built[cls], self._snapshot[cls] = table, dict(table)
        return self._built[cls]

    def __setitem__(self, cls: type, value: dict[str, Any]) -> None:
        if not isinstance(cls, type):
            raise ConfigError(
                f"pv.{self._name} is keyed by the model class: use type(model), not "
                f"{type(cls).__name__} instance {cls!r}"
            )
        if not isinstance(value, MutableMapping):
            raise ConfigError(
                f"pv.{self._name}[{cls.__name__}] must be a dict {{component: entry}}, got "
                f"{type(value).__name__}"
            )
        self._built.pop(cls, None)
        self._snapshot.pop(cls, None)
        self._user[cls] = value

    def __delitem__(self, cls: type) -> None:
        if cls in self._user:
            del self._user[cls]
        elif cls in self._built:
            del self._built[cls], self._snapshot[cls]
        else:
            raise KeyError(cls)

    def __contains__(self, cls: object) -> bool:
        if cls in self._user or cls in self._built:
            return True
        return isinstance(cls, type) and _covering_family(cls)[0] is not None

    def __iter__(self) -> Iterator[type]:
        yield from self._user
        yield from (c for c in self._built if c not in self._user)

    def __len__(self) -> int:
        return len(self._user) + sum(c not in self._user for c in self._built)

    def __repr__(self) -> str:
        names = ", ".join(c.__name__ for c in self)
        return f"<pv.{self._name}: {names or 'no classes read or assigned yet'}>"

    def user_value(self, cls: type, component: str) -> Any:
        """The entry a user assigned for ``component`` of ``cls`` (None: none assigned)."""
        if cls in self._user:
            return self._user[cls].get(component)
        if cls in self._built:
            value = self._built[cls].get(component)
            if value is not self._snapshot[cls].get(component):
                return value
        return None

    def has_user_entries(self, cls: type) -> bool:
        if cls in self._user:
            return True
        built = self._built.get(cls)
        return built is not None and any(self.user_value(cls, c) is not None for c in built)

    def lookup(self, cls: type, component: str) -> Any:
        """The entry (user or generated) for ``component`` of ``cls``, or None."""
        try:
            return self[cls].get(component)
        except KeyError:
            return None


type_to_module_mapping = ClassRegistry("type_to_module_mapping", _module_table)
type_to_dimension_mapping = ClassRegistry("type_to_dimension_mapping", _dimension_table)


__all__ = [
    "ClassRegistry",
    "TableEntry",
    "TableValue",
    "type_to_dimension_mapping",
    "type_to_module_mapping",
]
