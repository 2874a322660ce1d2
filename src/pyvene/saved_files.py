"""The files of a saved folder: their names and format tags, and reading / writing their
tensors (safetensors only, written atomically). Shared by :mod:`pyvene.serialization` (full
folders), :mod:`pyvene.trainable_io` (trainable weights only) and :mod:`pyvene.legacy`
(the original's folders), so none of them imports another for these helpers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import SerializationError

FORMAT = "pyvene.interventions"
TRAINABLE_FORMAT = "pyvene.trainable"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "interventions.safetensors"
TRAINABLE_NAME = "trainable_interventions.safetensors"
MODEL_NAME = "model.safetensors"


def folder_path(value: Any, what: str) -> str | os.PathLike:
    """``value`` when it is a folder path (str or os.PathLike), else a SerializationError."""
    if isinstance(value, (str, os.PathLike)) and str(value):
        return value
    raise SerializationError(
        f"{what} must be a folder path (a non-empty str or os.PathLike), got {value!r}; "
        "e.g. pvm.save('my_interventions')"
    )


def model_grad_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the model weights that require grad (what ``include_model`` saves)."""
    return {
        n: p.detach().cpu().contiguous().clone()
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], fmt: str) -> None:
    """Write ``tensors`` as a safetensors file tagged with ``fmt`` and the format version."""
    from safetensors.torch import save  # heavy-ish: imported on first save

    meta = {"format": fmt, "format_version": str(FORMAT_VERSION)}
    atomic_write(path, save(tensors, metadata=meta))


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; SerializationError when missing or unreadable."""
    if not path.is_file():
        raise SerializationError(f"missing weights file {str(path)!r}")
    from safetensors.torch import load as st_load

    try:
        return st_load(path.read_bytes())
    except Exception as err:
        raise SerializationError(
            f"{str(path)!r} is not a readable safetensors file (truncated or corrupt?): {err}"
        ) from err


def load_state(inter: nn.Module, state: dict[str, torch.Tensor], key: Any) -> None:
    """Strict load: same names, same shapes; the saved dtype is kept."""
    if "source_representation" in state and hasattr(inter, "set_source_representation"):
        inter.set_source_representation(state["source_representation"])
    own = inter.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or extra or bad:
        raise SerializationError(
            f"{key}: saved tensors do not fit {type(inter).__name__}: missing {missing}, "
            f"unexpected {extra}, wrong shape {bad}"
        )
    floats = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(floats) == 1:
        inter.to(next(iter(floats)))
    inter.load_state_dict(state, strict=True)


def check_model_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Refuse saved model weights whose names or shapes do not fit ``model``."""
    own = dict(model.named_parameters())
    bad = [k for k, v in weights.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise SerializationError(f"{MODEL_NAME}: weights that do not fit this model: {bad[:5]}")


__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_NAME",
    "TRAINABLE_FORMAT",
    "TRAINABLE_NAME",
    "WEIGHTS_NAME",
    "atomic_write",
    "check_model_weights",
    "folder_path",
    "load_state",
    "model_grad_weights",
    "read_tensors",
    "write_tensors",
]
