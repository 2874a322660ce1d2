"""``save_intervention`` / ``load_intervention``: the trainable interventions' weights only
(``trainable_interventions.safetensors``, plus ``model.safetensors`` with the model weights
that require grad), local folders only, as in the original. ``load_intervention`` also reads
a full :func:`pyvene.serialization.save` folder or the original's ``intkey_*.bin`` files;
every tensor is checked before any is copied."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import SerializationError
from .idioms import warn_hub_name
from .interventions.contract import contract
from .legacy import read_legacy_states
from .saved_files import (
    MODEL_NAME,
    TRAINABLE_FORMAT,
    TRAINABLE_NAME,
    WEIGHTS_NAME,
    check_model_weights,
    folder_path,
    model_grad_weights,
    read_tensors,
    write_tensors,
)

if TYPE_CHECKING:
    from .intervenable import IntervenableModel


def save_intervention(
    pvm: IntervenableModel, save_directory: str | os.PathLike, include_model: bool = True
) -> None:
    """Write the trainable interventions' weights (+ the model weights that require grad)."""
    save_directory = folder_path(save_directory, "save_directory")
    warn_hub_name(save_directory, "save_intervention")
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for slot in pvm.plan.slots:
        inter = slot.intervention
        if not contract(inter).trainable or id(inter) in seen:
            continue
        seen.add(id(inter))
        for k, v in inter.state_dict().items():
            tensors[f"{slot.key}/{k}"] = v.detach().cpu().contiguous().clone()
    directory = Path(save_directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    write_tensors(directory / TRAINABLE_NAME, tensors, TRAINABLE_FORMAT)
    weights = model_grad_weights(pvm.model) if include_model else {}
    if weights:
        write_tensors(directory / MODEL_NAME, weights, TRAINABLE_FORMAT)


def load_intervention(
    pvm: IntervenableModel, load_directory: str | os.PathLike, include_model: bool = True
) -> None:
    """Load trainable weights into ``pvm`` (from save_intervention, save, or the original's
    ``intkey_*.bin``); every tensor is checked before any is copied. The global RNG state
    is left as it was, whatever the interventions' ``load_state_dict`` draw."""
    directory = Path(folder_path(load_directory, "load_directory")).expanduser()
    if not directory.is_dir():
        raise SerializationError(f"{str(directory)!r} is not a directory")
    pending: list[tuple[nn.Module, dict[str, torch.Tensor]]] = []
    if (directory / TRAINABLE_NAME).is_file() or (directory / WEIGHTS_NAME).is_file():
        name = TRAINABLE_NAME if (directory / TRAINABLE_NAME).is_file() else WEIGHTS_NAME
        tensors = read_tensors(directory / name)
        states = {}
        for name_key, v in tensors.items():
            key, _, param = name_key.partition("/")
            states.setdefault(key, {})[param] = v
    else:
        states = read_legacy_states(directory, pvm)
    seen: set[int] = set()
    for slot in pvm.plan.slots:
        inter = slot.intervention
        if not contract(inter).trainable or id(inter) in seen:
            continue
        seen.add(id(inter))
        if slot.key not in states:
            raise SerializationError(
                f"{str(directory)!r} has no weights for {slot.key}; it holds {sorted(states)}"
            )
        _check_fit(inter, states[slot.key], slot.key)
        pending.append((inter, states[slot.key]))
    model_weights = None
    if include_model and (directory / MODEL_NAME).is_file():
        model_weights = read_tensors(directory / MODEL_NAME)
        check_model_weights(pvm.model, model_weights)
    # A client's load_state_dict may draw random numbers (pyreft's LoReFT rebuilds its rotation
    # with a fresh orthogonal init); loading must not shift the RNG stream a resumed Trainer
    # run goes on with (its data order), so the draws happen on a forked generator.
    tensors_now = [t for inter, _ in pending for t in inter.state_dict().values()]
    devices = sorted({t.device.index or 0 for t in tensors_now if t.is_cuda})
    with torch.random.fork_rng(devices=devices):
        for inter, state in pending:
            device = next((t.device for t in inter.state_dict().values()), torch.device("cpu"))
            inter.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=True)
    if model_weights:
        pvm.model.load_state_dict(model_weights, strict=False)


def _check_fit(inter: nn.Module, state: dict[str, torch.Tensor], key: str) -> None:
    own = inter.state_dict()
    bad = sorted(set(own) ^ set(state)) + [
        k for k in own if k in state and own[k].shape != state[k].shape
    ]
    if bad:
        raise SerializationError(f"{key}: saved weights do not fit {type(inter).__name__}: {bad}")


__all__ = ["load_intervention", "save_intervention"]
