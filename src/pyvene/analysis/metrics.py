"""Metrics a sweep reads from the last position's logits.

A metric maps logits of shape ``(rows, vocab)`` (the last prompt position of each batch row) to
one value per row, shape ``(rows,)``. Sweeps average the value over the base examples of a
cell. Build one with :func:`token_probability`, :func:`logit_difference`, or pass any callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import ConfigError, LocationError

Metric = Callable[[torch.Tensor], torch.Tensor]


def _ids(tokens: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    if isinstance(tokens, torch.Tensor):
        return tokens.long().reshape(-1)
    if isinstance(tokens, int):
        return torch.tensor([tokens])
    return torch.tensor(list(tokens), dtype=torch.long)


def token_probability(token: int | Sequence[int] | torch.Tensor) -> Metric:
    """Softmax probability of ``token`` (one id, or one id per row) at the last position."""
    ids = _ids(token)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        _check_ids(ids, logits)
        probs = torch.softmax(logits.float(), dim=-1)
        index = ids.to(logits.device).expand(logits.shape[0]) if ids.numel() == 1 else ids
        return probs.gather(-1, index.to(logits.device).view(-1, 1)).squeeze(-1)

    metric.__name__ = "token_probability"
    return metric


def logit_difference(
    good: int | Sequence[int] | torch.Tensor, bad: int | Sequence[int] | torch.Tensor
) -> Metric:
    """``logit[good] - logit[bad]`` at the last position (IOI's metric)."""
    a, b = _ids(good), _ids(bad)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        rows = logits.shape[0]
        _check_ids(a, logits)
        _check_ids(b, logits)
        ia = a.to(logits.device).expand(rows) if a.numel() == 1 else a.to(logits.device)
        ib = b.to(logits.device).expand(rows) if b.numel() == 1 else b.to(logits.device)
        lg = logits.float()
        return lg.gather(-1, ia.view(-1, 1)).squeeze(-1) - lg.gather(-1, ib.view(-1, 1)).squeeze(-1)

    metric.__name__ = "logit_difference"
    return metric


def _check_ids(ids: torch.Tensor, logits: torch.Tensor) -> None:
    """Token ids inside the vocabulary, and one id or one per row."""
    vocab = logits.shape[-1]
    bad = [int(i) for i in ids.tolist() if not 0 <= int(i) < vocab]
    if bad:
        raise LocationError(f"token id {bad[0]} is out of range for a vocabulary of {vocab}")
    if ids.numel() not in (1, logits.shape[0]):
        raise LocationError(
            f"{ids.numel()} token ids for {logits.shape[0]} rows: give one id, or one per row"
        )


def as_metric(metric: Metric | int) -> Metric:
    """A callable is used as is; an int is a token id for :func:`token_probability`."""
    if isinstance(metric, int):
        return token_probability(metric)
    if not callable(metric):
        raise ConfigError(
            "metric must be a callable logits(rows, vocab) -> (rows,), or a token id; "
            "see pyvene.analysis.token_probability / logit_difference"
        )
    return metric
