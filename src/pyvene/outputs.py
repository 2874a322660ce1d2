"""The two ``transformers.ModelOutput`` result classes of the original API, kept apart from the
core so that ``import pyvene`` never imports transformers (seconds of start-up): this module is
imported on first use of either name (``pv.IntervenableModelOutput``, a ``return_dict=True``
call, ``pv.InterventionOutput``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.utils import ModelOutput


@dataclass
class IntervenableModelOutput(ModelOutput):
    """``return_dict=True`` result of a call."""

    original_outputs: Any = None
    intervened_outputs: Any = None
    collected_activations: Any = None


@dataclass
class InterventionOutput(ModelOutput):
    """An intervention may return this instead of a tensor; the engine uses ``.output``."""

    output: torch.Tensor | None = None
    latent: Any = None


__all__ = ["IntervenableModelOutput", "InterventionOutput"]
