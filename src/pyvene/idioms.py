"""Warnings, at the caller's line, for common idioms that run without error but cannot do
what the user meant:

* restoring a layer at every position downstream of a noise intervention: the restored
  layer carries the clean run's state everywhere, so the output is the clean output at
  every layer and a causal trace is flat;
* training an intervention whose source equals its base (same inputs at the same
  locations): the intervention is the identity, its parameters get zero gradient and the
  loss cannot move (DAS needs counterfactual sources);
* ``save_intervention("user/repo")`` / ``save("user/repo")`` without ``save_to_hf_hub``:
  a local folder is written, the hub is never reached.

Each check is cheap (a few attribute reads per slot; the equality test runs only when a
trainable intervention is called with gradients on) and never changes the call.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import TYPE_CHECKING, Any

import torch

from .errors import user_stacklevel

if TYPE_CHECKING:
    from .engine import CallState, Slot

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_call(
    slots: list[Slot],
    runs: dict[int, list[Slot]],
    base: dict[str, Any],
    sources: list[dict[str, Any] | None],
    state: CallState,
) -> None:
    """Warn about the flat-trace and identity-training idioms in one parallel-mode call."""
    _flat_restore(slots, runs, state)
    if torch.is_grad_enabled():
        _identity_training(runs, base, sources, state)


def _is(slot: Slot, name: str) -> bool:
    return any(c.__name__ == name for c in type(slot.intervention).__mro__)


def _downstream(noise: Slot, restore: Slot) -> bool:
    """``restore`` runs after ``noise`` in the forward (layered family components only)."""
    a, b = noise.site.layer, restore.site.layer
    if a is None or b is None:
        return False
    return a < b or (a == b and noise.site.component == "block_input")


def _flat_restore(slots: list[Slot], runs: dict[int, list[Slot]], state: CallState) -> None:
    noises = [s for s in slots if _is(s, "NoiseIntervention")]
    if not noises:
        return
    sourced = {s.key for group in runs.values() for s in group}
    for slot in slots:
        whole = state.base_units.get(slot.key) is None and state.subspaces.get(slot.key) is None
        full = getattr(slot.intervention, "interchange_dim", None) in (None, slot.site.dim)
        if not (_is(slot, "VanillaIntervention") and slot.key in sourced and whole and full):
            continue
        noise = next((n for n in noises if _downstream(n, slot)), None)
        if noise is not None:
            warnings.warn(
                f"{slot.key} restores the clean run at every position downstream of the noise "
                f"at {noise.key}, so the output is the clean output whatever the layer (a causal "
                "trace is flat); restore one position at a time with unit_locations, e.g. "
                "{'sources->base': (p, p)}, or use pyvene.analysis.causal_trace",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
            return


def _identity_training(
    runs: dict[int, list[Slot]],
    base: dict[str, Any],
    sources: list[dict[str, Any] | None],
    state: CallState,
) -> None:
    for group, slots in runs.items():
        trained = [s for s in slots if any(p.requires_grad for p in s.intervention.parameters())]
        if not trained or not _same_inputs(sources[group], base):
            continue
        for slot in trained:
            if _same_units(state.source_units.get(slot.key), state.base_units.get(slot.key)):
                warnings.warn(
                    f"{slot.key}: the source equals the base (same inputs at the same "
                    f"locations), so {type(slot.intervention).__name__} is the identity here: "
                    "its parameters get zero gradient and the loss cannot move; train with "
                    "counterfactual sources (other inputs whose label differs)",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
                return


def _same_inputs(source: dict[str, Any] | None, base: dict[str, Any]) -> bool:
    if source is None or set(source) != set(base):
        return False
    for k, v in base.items():
        s = source[k]
        if isinstance(v, torch.Tensor):
            if not (isinstance(s, torch.Tensor) and s.shape == v.shape and torch.equal(s, v)):
                return False
        elif s is not v and s != v:
            return False
    return True


def _same_units(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    same_pos = (a.pos is None and b.pos is None) or (
        a.pos is not None and b.pos is not None and torch.equal(a.pos, b.pos)
    )
    return a.index.shape == b.index.shape and torch.equal(a.index, b.index) and same_pos


def warn_hub_name(path: str | os.PathLike, what: str) -> None:
    """Warn when a save folder looks like a hub repo id ("user/repo") and its first part is not
    an existing local folder: the call writes locally and never reaches the hub."""
    text = path if isinstance(path, str) else None
    if not text or not _HUB_NAME.match(text):
        return
    if os.path.isdir(text.split("/", 1)[0]):
        return
    warnings.warn(
        f"{what}({text!r}) writes the local folder {os.path.abspath(text)!r}; it does not "
        f"upload. To share on the Hugging Face Hub use save({text!r}, save_to_hf_hub=True, "
        f"hf_repo_name={text!r}) or push_to_hub({text!r})",
        UserWarning,
        stacklevel=user_stacklevel(),
    )
