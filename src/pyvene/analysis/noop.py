"""Which patches provably change nothing: the first position where a base example's inputs
differ from its source's.

In a causal decoder, every activation at position ``p`` (every layer, every component) is a
function of the inputs at positions ``0..p`` only. Before the first position where the base
and the source inputs differ, both runs therefore hold the same activations, and restoring
the source there is a no-op: a (cell, base example) row whose positions all lie before it is
the base run's value and is not computed, and a row's earlier positions are not patched
(:func:`.planning.plan_rows`, shared by :func:`.cells.run_cells` and the packed engine).

The first difference is known when:

* both inputs are token ids only (``input_ids``; an all-ones ``attention_mask`` is dropped
  by :func:`.cells.sweep_inputs`, a padded one refused): the first index where the ids
  differ, per base example (the length of the prompt when they are equal);
* the caller declares it (``diff_start``): :func:`.tracing.causal_trace` adds its noise to
  the subject's embeddings only, so the noised ``inputs_embeds`` equal the clean prompt's
  embeddings before the subject's first token.

Otherwise (``inputs_embeds`` without a declaration, other input keys such as
``position_ids``) nothing is known. The model must be a causal decoder the layer-stack fast
path accepts (:func:`.stack.stack_unavailable` is None: a causal LM family, eval mode, no
bidirectional attention, the prompt inside any sliding window); bidirectional encoders
(BERT: every position sees every other), encoder-decoders, state-space models and models in
training mode (dropout) never skip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .stack import stack_unavailable


def token_diff_starts(
    base: dict[str, torch.Tensor], source: dict[str, torch.Tensor]
) -> list[int] | None:
    """Per base example, the first position where its ``input_ids`` differ from its
    source's (source batch 1 or the base batch), the length when equal; None unless both
    inputs are token ids only."""
    if set(base) != {"input_ids"} or set(source) != {"input_ids"}:
        return None
    b, s = base["input_ids"], source["input_ids"].to(base["input_ids"].device)
    ne = b != s  # (nb, seq); a source batch of 1 broadcasts
    seq = ne.shape[1]
    first = torch.where(ne.any(1), ne.int().argmax(1), seq)  # argmax: the first True
    return [int(x) for x in first.tolist()]


def declared_diff_starts(diff_start: int | Sequence[int], nb: int, seq: int) -> list[int]:
    """``diff_start`` (one position for every base example, or one per example) checked."""
    values = [diff_start] * nb if isinstance(diff_start, int) else list(diff_start)
    if len(values) != nb:
        raise ConfigError(
            f"diff_start has {len(values)} entries; give one int or one per base example ({nb})"
        )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= seq:
            raise ConfigError(f"diff_start entry {v!r} must be an int in 0..{seq} (the length)")
    return values


def diff_starts(
    model: nn.Module,
    base: dict[str, torch.Tensor],
    source: dict[str, torch.Tensor],
    diff_start: int | Sequence[int] | None,
    nb: int,
    seq: int,
) -> list[int] | None:
    """Per base example, the first position where the base and source runs can differ
    (positions before it are no-ops to patch), or None when that is not provable: the model
    is not a causal decoder of the fast path, or the inputs are not token ids and no
    ``diff_start`` was declared."""
    declared = None if diff_start is None else declared_diff_starts(diff_start, nb, seq)
    if stack_unavailable(model, seq) is not None:
        return None
    tokens = token_diff_starts(base, source)
    if declared is None or tokens is None:
        return declared if tokens is None else tokens
    return [min(a, b) for a, b in zip(declared, tokens)]  # both known: the earlier
