"""Small utilities of the original ``pyvene.models.basic_utils`` (SPEC B §8.1), exported at top
level: logit-lens decoding (:func:`embed_to_distrib`), token printing, seeding, the boundary
functions of Boundless DAS, and permutation-matrix helpers."""

from __future__ import annotations

import importlib
import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import PyveneError
from ..interventions import get_intervention_class
from ..locations import GET_LOC as GET_LOC


def get_type_from_string(type_str: str) -> type:
    """``"<class 'pyvene.models.interventions.VanillaIntervention'>"`` -> the class.

    Intervention classes resolve through the registry by their last name (so the original's
    module paths work); other names import only from ``pyvene``, ``torch`` or
    ``transformers`` (a string from a file never imports arbitrary code)."""
    name = str(type_str).strip()
    if name.startswith("<class '") and name.endswith("'>"):
        name = name[len("<class '") : -2]
    try:
        return get_intervention_class(name)
    except PyveneError:
        pass
    module_name, _, attr = name.rpartition(".")
    if not module_name or module_name.split(".")[0] not in ("pyvene", "torch", "transformers"):
        raise PyveneError(
            f"type {type_str!r} is neither a registered intervention nor a class of pyvene, "
            "torch or transformers"
        )
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise PyveneError(f"type {type_str!r} could not be resolved: {err}") from err


def create_directory(path: str | os.PathLike[str]) -> None:
    """``mkdir -p path``."""
    os.makedirs(path, exist_ok=True)


def _unembedding(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(head, nn.Linear):
        return head.weight, head.bias
    config = getattr(model, "config", None)
    tied = getattr(config, "tie_word_embeddings", True)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if isinstance(emb, nn.Embedding) and tied:
        return emb.weight, None
    raise PyveneError(
        f"embed_to_distrib needs an LM head or tied input embeddings; {type(model).__name__} "
        f"has {'untied embeddings and ' if emb is not None else ''}no output embeddings. "
        "Pass the ...ForCausalLM / ...LMHeadModel model"
    )


def embed_to_distrib(
    model: nn.Module, embed: torch.Tensor, log: bool = False, logits: bool = False
) -> torch.Tensor:
    """Decode hidden states ``(..., D)`` into the vocabulary: ``embed @ W_U^T (+ b)`` with the
    model's LM head (or its tied input embeddings, e.g. ``GPT2Model.wte``), then (log-)softmax
    over the vocabulary unless ``logits``. No final norm is applied: pass normed states
    (``last_hidden_state``) or apply ``ln_f`` / ``norm`` yourself for a logit lens."""
    weight, bias = _unembedding(model)
    with torch.no_grad():
        vocab = embed.to(weight.dtype) @ weight.T
        if bias is not None:
            vocab = vocab + bias
        if logits:
            return vocab
        return vocab.log_softmax(dim=-1) if log else vocab.softmax(dim=-1)


def set_seed(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def sigmoid_boundary(
    _input: torch.Tensor, boundary_x: Any, boundary_y: Any, temperature: Any
) -> torch.Tensor:
    """``sigma((x - lo) / T) * sigma((hi - x) / T)``: ~1 inside ``[lo, hi]``, ~0 outside."""
    return torch.sigmoid((_input - boundary_x) / temperature) * torch.sigmoid(
        (boundary_y - _input) / temperature
    )


def harmonic_sigmoid_boundary(
    _input: torch.Tensor, boundary_x: Any, boundary_y: Any, temperature: Any
) -> torch.Tensor:
    """``sigma((x-lo)/T)`` for x <= lo, ``sigma((hi-x)/T)`` for x >= hi, and inside
    ``sigma(h/T)`` with ``h = (0.5 (1/|x-lo| + 1/|x-hi|))^-1`` the harmonic mean distance."""
    lo = torch.as_tensor(boundary_x, dtype=_input.dtype, device=_input.device)
    hi = torch.as_tensor(boundary_y, dtype=_input.dtype, device=_input.device)
    below, above = _input <= lo, _input >= hi
    inside = ~below & ~above
    d_lo = (_input - lo).abs().masked_fill(~inside, 1.0)
    d_hi = (_input - hi).abs().masked_fill(~inside, 1.0)
    harmonic = 1.0 / (0.5 * (1.0 / d_lo + 1.0 / d_hi))
    return torch.where(
        below,
        torch.sigmoid((_input - lo) / temperature),
        torch.where(
            above, torch.sigmoid((hi - _input) / temperature), torch.sigmoid(harmonic / temperature)
        ),
    )


def count_parameters(model: nn.Module) -> int:
    """Number of elements of the parameters that require a gradient."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def random_permutation_matrix(n: int) -> torch.Tensor:
    """An ``n x n`` permutation matrix (rows of ``eye(n)`` in random order)."""
    return torch.eye(n)[torch.randperm(n)]


def closeness_to_permutation_loss(rotation: torch.Tensor) -> torch.Tensor:
    """``0.5 (mean|rowsum-1| + mean|colsum-1|) + mean(R * (1-R))``: 0 for a permutation."""
    row = (rotation.sum(dim=1) - 1).abs().mean()
    col = (rotation.sum(dim=0) - 1).abs().mean()
    return 0.5 * (row + col) + (rotation * (1 - rotation)).mean()


def format_token(tokenizer: Any, tok: Any) -> str:
    """``tokenizer.decode(tok)`` with spaces shown as ``_`` and newlines as ``\\n``."""
    return tokenizer.decode(tok).replace(" ", "_").replace("\n", "\\n")


def top_vals(
    tokenizer: Any, res: torch.Tensor, n: int = 10, return_results: bool = False
) -> list[tuple[str, float]] | None:
    """The ``n`` largest entries of a 1-D vocabulary vector: printed as ``token value``
    lines, or returned as ``[(token, value), ...]`` with ``return_results=True``."""
    if res.dim() != 1:
        raise ValueError(f"top_vals takes a 1-D vocabulary vector, got shape {tuple(res.shape)}")
    values, indices = torch.topk(res, n)
    results = [
        (format_token(tokenizer, int(i)), float(v)) for v, i in zip(values.tolist(), indices)
    ]
    if return_results:
        return results
    for token, value in results:
        print(f"{token:<20} {value}")
    return None


def get_list_depth(lst: Any) -> int:
    """Nesting depth of lists: a non-list is 0, ``[]`` is 1, ``[[1]]`` is 2."""
    if isinstance(lst, list):
        return 1 + max((get_list_depth(item) for item in lst), default=0)
    return 0


def get_batch_size(model_input: Any) -> int:
    """``x.shape[0]`` of a tensor, or of the first value of a dict of tensors."""
    if isinstance(model_input, torch.Tensor):
        return model_input.shape[0]
    if isinstance(model_input, dict) and model_input:
        return next(iter(model_input.values())).shape[0]
    raise ValueError(
        f"get_batch_size takes a tensor or a non-empty dict of tensors, got "
        f"{type(model_input).__name__}"
    )


__all__ = [
    "GET_LOC",
    "closeness_to_permutation_loss",
    "count_parameters",
    "create_directory",
    "embed_to_distrib",
    "format_token",
    "get_batch_size",
    "get_list_depth",
    "get_type_from_string",
    "harmonic_sigmoid_boundary",
    "random_permutation_matrix",
    "set_seed",
    "sigmoid_boundary",
    "top_vals",
]
