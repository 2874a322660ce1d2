"""A tiny dataset and a Trainer whose loss is an IntervenableModel's, shared by the HF Trainer
tests (one process and several)."""

from __future__ import annotations

import torch
import transformers


class Data(torch.utils.data.Dataset):
    """``n`` fixed sequences of 7 tokens; the target is token 5 at every position."""

    def __init__(self, n: int = 3) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(1, 40, (7,), generator=g), "labels": torch.full((7,), 5)}


class InterventionTrainer(transformers.Trainer):
    """Trains the interventions at every position against ``labels`` (the model's own loss)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        base = {"input_ids": inputs["input_ids"]}
        _, out = model(base, unit_locations={"base": list(range(7))}, labels=inputs["labels"])
        return (out.loss, out) if return_outputs else out.loss
