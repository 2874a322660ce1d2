"""How a saved file names an intervention class, and how that name is resolved.

A registered class is saved by its registered name; any other class (a client's, e.g.
pyreft's ``LoreftIntervention``) by its import path ``"module:QualName"``. Resolution never
imports anything and never runs code named by a file: an import path resolves only when its
module is already in ``sys.modules`` (the user imported it), by plain ``__dict__`` lookups.
The original pyvene's ``"<class 'pkg.mod.Name'>"`` strings resolve the same way, then by
registered name.
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

from .errors import SerializationError, choices_message
from .interventions.base import registered_interventions


def class_reference(cls: type) -> str:
    """The string a saved config uses for ``cls``: its registered name, else
    ``"module:QualName"``. Raises SerializationError for classes defined inside a function."""
    name = getattr(cls, "registered_name", None)
    if isinstance(name, str) and registered_interventions().get(name) is cls:
        return name
    if "<locals>" in cls.__qualname__:
        raise SerializationError(
            f"{cls.__qualname__} is defined inside a function, so a saved folder could not name "
            "it: define the class at module level (it is then saved by its import path) or "
            "decorate it with @pyvene.register()"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


def _lookup(module_name: str, qualname: str, text: str) -> type:
    module = sys.modules.get(module_name)
    short = qualname.rsplit(".", 1)[-1]
    if module is None:
        if module_name == "__main__":
            hint = f"define {short} in the script that loads the folder"
        else:
            hint = f"add `from {module_name} import {short}` (or `import {module_name}`)"
        raise SerializationError(
            f"saved intervention class {text!r} is not available: module {module_name!r} is "
            f"not imported in this process. To load it, {hint} before loading; pyvene never "
            "imports a module named by a file."
        )
    obj: Any = module
    for part in qualname.split("."):
        space = getattr(obj, "__dict__", {})
        if part not in space:
            raise SerializationError(
                f"saved intervention class {text!r}: module {module_name!r} is imported but "
                f"defines no {qualname!r} (renamed or moved?). Import the module that defines "
                f"it, or register it with @pyvene.register({short!r})."
            )
        obj = space[part]
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise SerializationError(
            f"saved intervention class {text!r} names {type(obj).__name__} object, not an "
            "intervention class (an nn.Module subclass)"
        )
    return obj


def resolve_class(text: Any) -> type:
    """The class that a saved ``type`` string names (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise SerializationError(
            f"saved intervention 'type' must be a registered name or 'module:QualName', "
            f"got {text!r}"
        )
    text = text.strip()
    registry = registered_interventions()
    if text in registry:
        return registry[text]
    if ":" in text:
        module_name, _, qualname = text.partition(":")
        return _lookup(module_name, qualname, text)
    dotted = text
    if dotted.startswith("<class '") and dotted.endswith("'>"):  # the original's form
        dotted = dotted[len("<class '") : -2]
    if "." in dotted:
        module_name, _, short = dotted.rpartition(".")
        if module_name in sys.modules:
            try:
                return _lookup(module_name, short, text)
            except SerializationError:
                pass
        if short in registry:
            return registry[short]
        return _lookup(module_name, short, text)
    raise SerializationError(
        choices_message("intervention type", text, sorted(registry))
        + " A custom class saved by name must be registered (@pyvene.register) before loading."
    )
