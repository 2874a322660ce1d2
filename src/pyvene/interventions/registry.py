"""The name registry of interventions: saved configs name a class, loading looks it up here and
never imports a module named by a string."""

from __future__ import annotations

from ..errors import ConfigError, choices_message

_REGISTRY: dict[str, type] = {}


def register(name: str | type | None = None):
    """Class decorator: make an intervention loadable by name from a saved config. Use as
    ``@register`` (the class name) or ``@register("name")``."""

    def wrap(cls: type) -> type:
        key = name if isinstance(name, str) else cls.__name__
        cls.registered_name = key
        _REGISTRY[key] = cls
        return cls

    return wrap(name) if isinstance(name, type) else wrap


def registered_interventions() -> dict[str, type]:
    """Name -> class of every registered intervention."""
    return dict(_REGISTRY)


def get_intervention_class(name: str | type) -> type:
    """Look a class up by registered name. Accepts the original's "<class 'a.b.Name'>" form.
    Never imports anything named by the string."""
    if isinstance(name, type):
        return name
    short = str(name).strip()
    if short.startswith("<class '") and short.endswith("'>"):
        short = short[len("<class '") : -2]
    short = short.rsplit(".", 1)[-1]
    if short not in _REGISTRY:
        raise ConfigError(choices_message("intervention", name, sorted(_REGISTRY)))
    return _REGISTRY[short]
