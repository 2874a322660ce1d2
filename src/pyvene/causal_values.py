"""The values a causal model and its datasets share: a setting (``{variable: value}``), the
errors, and value equality / flattening. :mod:`pyvene.causal_model` (the model) and
:mod:`pyvene.causal_sampling` (its samplers and datasets) both build on this module, which
imports neither.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .errors import PyveneError, choices_message

Setting = dict[str, Any]


class CausalModelError(PyveneError, ValueError):
    """A causal model, setting, value or sampler request is invalid."""


class UnknownVariableError(CausalModelError):
    """A variable name is not one of the model's variables."""


def unknown_variable(name: object, choices: Sequence[str], where: str = "") -> UnknownVariableError:
    """The error for an unknown variable name: valid names and the closest (also by case)."""
    msg = choices_message("variable", name, choices)
    if "Did you mean" not in msg:  # difflib is case-sensitive
        lower = {c.lower(): c for c in choices}
        near = difflib.get_close_matches(str(name).lower(), list(lower), 1, 0.4)
        msg += f" Did you mean {lower[near[0]]!r}?" if near else ""
    return UnknownVariableError(f"{where}{msg}")


def same_value(a: Any, b: Any) -> bool:
    """Equality that also works for arrays and tensors (``a == b`` is elementwise there)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def flatten_value(value: Any) -> list[float]:
    """A variable's value as a flat list of floats (scalars become length 1)."""
    if isinstance(value, (bool, int, float, np.generic)):
        return [float(value)]
    if isinstance(value, torch.Tensor):
        return value.detach().flatten().float().tolist()
    return np.asarray(value, dtype=np.float64).ravel().tolist()


__all__ = [
    "CausalModelError",
    "Setting",
    "UnknownVariableError",
    "flatten_value",
    "same_value",
    "unknown_variable",
]
