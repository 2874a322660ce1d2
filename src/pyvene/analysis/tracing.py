"""ROME-style causal tracing (Meng et al. 2022): corrupt the subject tokens' embeddings with
seeded Gaussian noise, then restore clean states one (layer, token) at a time and read the
probability of the target token, averaged over the noise samples.

Three grids, each ``(layers, tokens)``: ``block_output`` (single hidden states), and
``mlp_output`` / ``attention_output`` restored over a run of ``window`` layers centred on the
layer (ROME's "run of 10 MLP lookups / attention modules"). The cells of all grids are one
batched job (:func:`.patching.patching_sweep`: one clean run, one run of the noised inputs,
shared batches); each equals a per-cell IntervenableModel run with the noised embeddings as
base input and the clean prompt as source.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..devices import input_device
from ..errors import PyveneError
from ..interventions.basic import embedding_noise_level
from .display import HeatmapDisplay
from .metrics import token_probability
from .patching import num_layers, patching_sweep
from .plots import plot_trace

KINDS = ("block_output", "mlp_output", "attention_output")


class TraceInputError(PyveneError, ValueError):
    """The target or the subject cannot be found (bad user input, one-line message)."""


@dataclass
class TraceResult(HeatmapDisplay):
    """``grids[kind]``: p(target) after restoring each (layer, token), shape
    ``(len(layers), len(tokens))``; ``clean_prob`` / ``corrupted_prob``: no restoration."""

    grids: dict[str, torch.Tensor]
    tokens: list[str]
    layers: list[int]
    subject: tuple[int, int]
    target: str
    target_id: int
    clean_prob: float
    corrupted_prob: float
    samples: int
    noise_level: float
    window: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def last_subject(self) -> int:
        return self.subject[1] - 1

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """ROME's panels side by side (:func:`~pyvene.analysis.plot_trace`); saved when
        ``path`` is given. Notebooks show it when the result is displayed."""
        return plot_trace(self, path)

    def summary(self) -> str:
        return (
            f"TraceResult: p({self.target!r}) clean={self.clean_prob:.4f} "
            f"corrupted={self.corrupted_prob:.4f}, {self.samples} noise samples"
        )


def target_token_id(tokenizer: Any, target: str, single: bool = True) -> int:
    """The token id of ``target``. With ``single`` (default) the target must be exactly one
    known token; otherwise its first token is used (ROME's convention)."""
    ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    if not ids or (unk is not None and unk in ids):
        raise TraceInputError(f"target {target!r} is not a known token of this tokenizer")
    if single and len(ids) > 1:
        pieces = [tokenizer.decode([i]) for i in ids]  # text, not raw 'Ġ' byte pieces
        raise TraceInputError(
            f"target {target!r} is not one token of this tokenizer (it splits into {pieces}); "
            "give a single token, usually with its leading space, e.g. ' Paris'"
        )
    return int(ids[0])


def subject_span(tokenizer: Any, prompt: str, subject: str) -> tuple[int, int]:
    """Token range ``[start, end)`` of the first occurrence of ``subject`` in ``prompt``."""
    char = prompt.find(subject) if subject else -1
    if char < 0:
        raise TraceInputError(f"subject {subject!r} does not occur in the prompt {prompt!r}")
    lo, hi = char, char + len(subject)
    try:
        enc = tokenizer(prompt, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
    except (NotImplementedError, TypeError, KeyError, ValueError):
        offsets = None
    if offsets is not None:
        inside = [i for i, (s, e) in enumerate(offsets) if e > s and s < hi and e > lo]
        if inside:
            return inside[0], inside[-1] + 1
    ids = tokenizer(prompt)["input_ids"]
    for form in (subject, " " + subject):
        sub = tokenizer(form, add_special_tokens=False)["input_ids"]
        for i in range(len(ids) - len(sub) + 1):
            if sub and ids[i : i + len(sub)] == sub:
                return i, i + len(sub)
    raise TraceInputError(f"subject {subject!r} does not align with the prompt's tokens")


def corrupt_embeddings(
    model: nn.Module,
    input_ids: torch.Tensor,
    span: tuple[int, int],
    samples: int,
    noise_level: float,
    seed: int = 0,
) -> torch.Tensor:
    """``samples`` copies of the prompt's token embeddings with ``noise_level * N(0, 1)``
    added at the subject tokens; the noise comes from a ``torch.Generator`` seeded ``seed``."""
    emb = model.get_input_embeddings()(input_ids.reshape(1, -1).to(input_device(model)))
    gen = torch.Generator().manual_seed(int(seed))
    n, d = span[1] - span[0], emb.shape[-1]
    noise = torch.randn(samples, n, d, generator=gen, dtype=torch.float32) * noise_level
    out = emb.expand(samples, -1, -1).clone()
    out[:, span[0] : span[1]] += noise.to(out.device, out.dtype)
    return out


def noised_from(span: tuple[int, int]) -> int:
    """The first position where :func:`corrupt_embeddings`' noised embeddings differ from
    the clean prompt's: the subject's first token (noise is added at the subject only), so
    restoring a state before it is a no-op in a causal decoder (:mod:`.noop`)."""
    return int(span[0])


def trace_kinds(kinds: Sequence[str]) -> list[str]:
    """The grid kinds of a trace (duplicates dropped), each one of :data:`KINDS`."""
    kinds = list(dict.fromkeys(kinds))
    if not kinds:
        raise TraceInputError(f"no trace kinds given; choose from {list(KINDS)}")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise TraceInputError(f"unknown trace kind(s) {bad}; choose from {list(KINDS)}")
    return kinds


def trace_windows(kinds: Sequence[str], window: int) -> dict[str, int]:
    """How many layers each kind restores together: hidden states one, MLP / attention a
    run of ``window`` (ROME)."""
    return {k: 1 if k == "block_output" else window for k in kinds}


def trace_prompt(
    tokenizer: Any, prompt: str, target: str, subject: str, device: torch.device
) -> tuple[torch.Tensor, tuple[int, int], int]:
    """``(ids (1, seq) on device, subject span, target id)`` of one fact to trace."""
    target_id = target_token_id(tokenizer, target)
    span = subject_span(tokenizer, prompt, subject)
    ids = torch.tensor([tokenizer(prompt)["input_ids"]], device=device)
    return ids, span, target_id


def causal_trace(
    model: nn.Module,
    tokenizer: Any,
    prompt: str,
    target: str,
    subject: str,
    *,
    samples: int = 10,
    noise: float = 3.0,
    noise_level: float | None = None,
    seed: int = 0,
    window: int = 10,
    kinds: Sequence[str] = KINDS,
    layers: Sequence[int] | None = None,
    progress: bool = True,
    method: str = "auto",
    memory_budget: int = 1 << 29,
) -> TraceResult:
    """Causal trace of ``prompt`` -> ``target`` with the ``subject`` tokens corrupted.

    ``noise``: multiple of the embedding std (ROME's default 3); ``noise_level`` overrides it
    with an absolute scale. ``samples`` seeded noise samples are averaged. ``window`` layers
    are restored together for the mlp/attention grids. ``kinds``: which grids.
    """
    kinds = trace_kinds(kinds)
    ids, span, target_id = trace_prompt(tokenizer, prompt, target, subject, input_device(model))
    level = noise_level if noise_level is not None else embedding_noise_level(model, noise)
    with torch.no_grad():
        corrupted = corrupt_embeddings(model, ids, span, samples, level, seed)
    metric = token_probability(target_id)
    n_layers = num_layers(model)
    layer_list = list(range(n_layers)) if layers is None else list(layers)
    res = patching_sweep(
        model, {"inputs_embeds": corrupted}, {"input_ids": ids}, metric, kinds, layer_list,
        window=trace_windows(kinds, window), method=method,
        memory_budget=memory_budget, progress=progress, diff_start=noised_from(span),
    )  # fmt: skip
    grids = {kind: res[kind] for kind in kinds}
    clean, dirty = res.source_value, res.base_value
    return TraceResult(
        grids, tokenizer.convert_ids_to_tokens(ids[0].tolist()), layer_list, span, target,
        target_id, clean, dirty, samples, float(level), window,
    )  # fmt: skip
