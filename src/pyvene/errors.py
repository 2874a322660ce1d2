"""Errors raised by pyvene, and helpers that name the bad value, the valid choices and the
closest match, so a typo is fixed from the message alone."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable
from pathlib import Path


class PyveneError(Exception):
    """Base class of every error pyvene raises on purpose."""


class ConfigError(PyveneError, ValueError):
    """A configuration object (representation, intervention type, mode) is invalid."""


class UnknownComponentError(ConfigError, KeyError):
    """A component name (or module path) does not exist in the wrapped model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownKeyError(ConfigError, KeyError):
    """An intervention key (``interventions[key]``) does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LayerOutOfRangeError(ConfigError, IndexError):
    """A representation's layer is outside the model's layers."""


class LocationError(PyveneError, ValueError, IndexError):
    """unit_locations / subspaces have the wrong nesting, batch size or range (also an
    IndexError, which the original raised for out-of-range units and subspaces)."""


class DimensionMismatchError(PyveneError, ValueError):
    """A tensor does not have the width the component or intervention expects."""


class SerializationError(PyveneError, ValueError):
    """A saved intervention directory is missing, truncated, unknown or incompatible."""


class DeviceError(PyveneError, RuntimeError):
    """An intervention, a site or a per-call tensor is on a device its call cannot use."""


class DistributedError(PyveneError, RuntimeError):
    """A distributed (DDP) setup that would train wrongly, e.g. an intervention wrapped alone."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices closest to ``name`` (difflib), best first."""
    return difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=0.4)


def choices_message(what: str, bad: object, choices: Iterable[str]) -> str:
    """'unknown <what> 'x'; valid: a, b, c. Did you mean 'a'?' in one line."""
    choices = list(choices)
    msg = f"unknown {what} {bad!r}; valid choices: {', '.join(map(str, choices))}."
    near = closest(str(bad), choices)
    if near:
        msg += f" Did you mean {' or '.join(repr(n) for n in near)}?"
    return msg


_PACKAGE = str(Path(__file__).resolve().parent)


def _torch_module_file() -> str:
    """File of ``torch.nn.Module.__call__`` (torch is loaded whenever pyvene warns; errors.py
    itself does not import it, to keep ``import pyvene`` and ``pyvene --help`` fast)."""
    module = sys.modules.get("torch.nn.modules.module")
    return str(Path(module.__file__).resolve()) if module is not None else ""


def user_stacklevel() -> int:
    """``warnings.warn`` stacklevel of the first frame outside pyvene (and outside
    ``nn.Module.__call__``), so that a warning names the user's line."""
    torch_module = _torch_module_file()
    level, frame = 2, sys._getframe(2)  # 2: the caller of the function that warns
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE) or frame.f_code.co_filename == torch_module
    ):
        level, frame = level + 1, frame.f_back
    return level
