"""Read folders written by the original pyvene: ``config.json`` (``PretrainedConfig`` form
with ``intervention_types`` as ``"<class 'pkg.Name'>"`` strings, 14-element representation
arrays, ``intervention_dimensions``, ``intervention_constant_sources``) and one
``intkey_{key}.bin`` state dict per trainable or constant-source intervention.

Type strings resolve among already-imported modules, then by registered name (nothing is
imported; :mod:`pyvene.classpath`);
``.bin`` files are read with ``torch.load(weights_only=True)`` on the CPU, which refuses any
pickled object that is not a plain tensor container."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .classpath import resolve_class
from .config import FIELDS, IntervenableConfig, RepresentationConfig
from .errors import PyveneError, SerializationError
from .families import resolve_site
from .interventions.contract import construct, contract
from .saved_files import load_state

if TYPE_CHECKING:
    from .intervenable import IntervenableModel

_DROP = ("embed_dim", "interchange_dim")  # buffers of the original, attributes here


def legacy_file(directory: Path, key: str) -> Path:
    """Path of one intervention's weights in a folder saved by the original
    (``intkey_<key>.bin``)."""
    return directory / f"intkey_{key}.bin"


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from an original ``.bin`` file, safely (weights_only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SerializationError(
            f"{str(path)!r} could not be read safely (torch.load weights_only=True): "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SerializationError(f"{str(path)!r} does not hold a state dict of tensors")
    return {k: v for k, v in state.items() if k not in _DROP}


def read_legacy(directory: Path, data: dict[str, Any], model: nn.Module) -> IntervenableConfig:
    """An IntervenableConfig whose representations carry ready interventions."""
    types = data.get("intervention_types")
    reps = data.get("representations")
    n = len(reps) if isinstance(reps, list) else -1
    if not isinstance(types, list) or len(types) != n:
        raise SerializationError(f"{directory / 'config.json'}: malformed original-pyvene config")
    keys = data.get("sorted_keys") or [None] * n
    dims = data.get("intervention_dimensions") or [None] * n
    constants = data.get("intervention_constant_sources") or [False] * n
    out = []
    for i in range(n):
        rep = _rep(reps[i])
        cls = resolve_class(types[i])
        try:
            site = resolve_site(model, rep.layer, rep.component)
        except PyveneError as err:
            raise SerializationError(f"representation {i}: {err}") from err
        embed = None if site.dim is None else site.dim * rep.max_number_of_units
        kwargs = {k: v for k, v in rep._asdict().items() if k != "intervention_type"}
        try:
            inter = construct(cls, kwargs, embed)
        except Exception as err:
            raise SerializationError(f"{cls.__name__} could not be rebuilt: {err}") from err
        if dims[i] is not None and hasattr(inter, "set_interchange_dim"):
            inter.set_interchange_dim(dims[i])
        key = keys[i]
        path = None if key is None else legacy_file(directory, key)
        needs = contract(inter).trainable or (constants[i] and not contract(cls).source_constant)
        if needs:
            if path is None or not path.is_file():
                raise SerializationError(f"missing weights file {str(path)!r} for {key}")
            load_state(inter, read_state(path), key)
        elif constants[i]:
            inter.is_source_constant = True
        out.append(rep._replace(intervention=inter))
    return IntervenableConfig(out, mode=data.get("mode", "parallel"))


def _rep(value: Any) -> RepresentationConfig:
    if isinstance(value, dict):
        fields = dict(value)
    elif isinstance(value, (list, tuple)) and len(value) <= len(FIELDS):
        fields = dict(zip(FIELDS, value))
    else:
        raise SerializationError(f"saved representation {value!r} has an unknown form")
    fields = {k: v for k, v in fields.items() if k in FIELDS}
    for f in ("intervention_type", "intervention", "source_representation"):
        fields[f] = None
    try:
        return RepresentationConfig(**fields)
    except (TypeError, PyveneError) as err:
        raise SerializationError(f"saved representation {value!r} is invalid: {err}") from err


def read_legacy_states(directory: Path, pvm: IntervenableModel) -> dict[str, dict]:
    """key -> state dict for every ``intkey_{key}.bin`` of ``pvm``'s keys."""
    states = {}
    for key in pvm.sorted_keys:
        path = legacy_file(directory, key)
        if path.is_file():
            states[key] = read_state(path)
    if not states:
        raise SerializationError(
            f"{str(directory)!r} holds no saved intervention weights "
            "(trainable_interventions.safetensors, interventions.safetensors or intkey_*.bin)"
        )
    return states


__all__ = ["legacy_file", "read_legacy", "read_legacy_states", "read_state"]
