"""Shared by the trainable-intervention tests: the test width, an orthogonality error and a
seeded (base, source) pair."""

from __future__ import annotations

import torch

D = 8


def orth_error(m: torch.Tensor) -> float:
    eye = torch.eye(m.shape[1], dtype=m.dtype)
    return float((m.T @ m - eye).abs().max())


def pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)
