"""Plumbing shared by the research models (MLP, GRU): ``device``, token + position embedding
of ``input_ids``, the task heads' base model under ``base_model_prefix`` and base call, and
HF's loss rules."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ResearchModule(nn.Module):
    """``device`` as HF models have it."""

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def embed_inputs(
    model: nn.Module, input_ids, position_ids, inputs_embeds, shape: str
) -> torch.Tensor:
    """``inputs_embeds`` if given, else ``wte(input_ids) + wpe(position_ids)`` (positions
    ``0..S-1`` by default); a model built without embeddings needs ``inputs_embeds``."""
    if inputs_embeds is not None:
        return inputs_embeds
    if not model.config.include_emb:
        raise ValueError(
            f"{type(model).__name__} without embeddings (include_emb=False) needs "
            f"inputs_embeds {shape}"
        )
    if position_ids is None:
        position_ids = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return model.wte(input_ids) + model.wpe(position_ids)


class ResearchHead(ResearchModule):
    """A task head over a base model stored as attribute ``base_model_prefix``."""

    base_model_prefix: str

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)

    def run_base(
        self, input_ids, position_ids, inputs_embeds, output_hidden_states, **extra: Any
    ) -> tuple:
        """The base model's tuple output for the arguments every head forwards."""
        return self.base_model(
            input_ids=input_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            **extra,
        )


def classification_loss(config, logits: torch.Tensor, labels) -> torch.Tensor | None:
    """HF's problem_type rules: regression (MSE), single-label (CE), multi-label (BCE)."""
    if labels is None:
        return None
    n = logits.shape[-1]
    kind = config.problem_type
    if kind == "regression":
        return nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
    if kind == "multi_label_classification":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return nn.functional.cross_entropy(logits.reshape(-1, n), labels.reshape(-1).long())
