"""Distributed Alignment Search (Geiger et al., 2023) on hierarchical equality, on a CPU.

1. Train a 3-layer ReLU MLP (hidden 16) on ``(W==X) == (Y==Z)`` over four 4-dim entities.
2. Align the causal model's WX and YZ with the first hidden layer: one learned 16 x 16 rotation
   ``R`` where rotated dims 0-7 <-> WX and 8-15 <-> YZ, trained on counterfactuals from the
   CausalModel (interchange WX, YZ, or both).
3. Report the interchange-intervention accuracy (IIA) on fresh (held-out) entities, next to the
   neuron-aligned baseline (neurons 0-7 <-> WX, 8-15 <-> YZ, no rotation).

    python examples/das_hierarchical_equality.py

The model is a plain ``nn.Module``; interventions are placed by module path
(``"layers.0.output"`` = output of the first hidden layer, after its ReLU).
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

import pyvene as pv
from pyvene.causal_datasets import (
    hierarchical_equality_causal_model,
    hierarchical_equality_intervention_id,
)
from pyvene.training import iia, train_interchange

SITE = "layers.0.output"
WX_DIMS, YZ_DIMS = list(range(0, 8)), list(range(8, 16))


class EqualityMLP(nn.Module):
    """``n_layer`` x (Linear + ReLU) of width ``h_dim``, then a linear classifier. Called as
    ``model(input_ids=x)`` with ``x`` of shape ``(B, in_dim)``; returns ``.logits (B, C)``."""

    def __init__(self, in_dim: int = 16, h_dim: int = 16, n_layer: int = 3, classes: int = 2):
        super().__init__()
        self.config = SimpleNamespace(
            model_type="das_mlp", in_dim=in_dim, h_dim=h_dim, n_layer=n_layer, num_classes=classes
        )
        widths = [in_dim] + [h_dim] * n_layer
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(widths, widths[1:])
        )
        self.head = nn.Linear(h_dim, classes)

    def forward(self, input_ids: torch.Tensor, labels: Any = None) -> SequenceClassifierOutput:
        h = input_ids.float()
        for layer in self.layers:
            h = layer(h)
        return SequenceClassifierOutput(logits=self.head(h))


def train_mlp(
    causal_model, sampler, n: int = 60_000, epochs: int = 6, seed: int = 0
) -> tuple[EqualityMLP, float]:
    """Fit the MLP on factual data of the causal model; returns it and its held-out accuracy."""
    data = causal_model.generate_factual_dataset(n, sampler, seed=seed + 1, stacked=True)
    test = causal_model.generate_factual_dataset(5_000, sampler, seed=seed + 1001, stacked=True)
    torch.manual_seed(seed)
    model = EqualityMLP()
    x, y = data["input_ids"], data["labels"].long().flatten()
    batch = 128
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            loss = F.cross_entropy(model(x[idx]).logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = model(test["input_ids"]).logits.argmax(-1)
    return model, (pred == test["labels"].long().flatten()).float().mean().item()


def counterfactual_batches(causal_model, sampler, n: int, batch: int, seed: int) -> list[dict]:
    """Interchange batches from the causal model. Each batch shares one intervention:
    id 0 = WX from source 0, 1 = YZ from source 1, 2 = both. The two interventions of the
    IntervenableModel (WX first, then YZ) share one rotation; a None source skips one."""
    iid = hierarchical_equality_intervention_id
    data = causal_model.generate_counterfactual_dataset(
        n, iid, batch, sampler, seed=seed, stacked=True
    )
    out = []
    for i in range(0, n, batch):
        rows = slice(i, i + batch)
        kind = int(data["intervention_id"][i])
        src = data["source_input_ids"][rows]  # (B, 2, 16): sources in variable order
        size = src.shape[0]
        sources = {0: [src[:, 0], None], 1: [None, src[:, 0]], 2: [src[:, 0], src[:, 1]]}[kind]
        out.append(
            {
                "base": {"input_ids": data["input_ids"][rows]},
                "sources": [None if s is None else {"input_ids": s} for s in sources],
                "subspaces": [[WX_DIMS] * size, [YZ_DIMS] * size],
                "labels": data["labels"][rows].long().flatten(),
            }
        )
    return out


def wrap(model: nn.Module, intervention: nn.Module) -> pv.IntervenableModel:
    """Two interventions at the first hidden layer (WX, YZ), sharing one intervention."""
    reps = [{"component": SITE, "intervention": intervention} for _ in range(2)]
    return pv.IntervenableModel(reps, model)


def cross_entropy(outputs: Any, batch: dict) -> torch.Tensor:
    return F.cross_entropy(outputs.logits, batch["labels"])


def run(
    seed: int = 0,
    train_size: int = 40_960,
    epochs: int = 8,
    lr: float = 5e-3,
    progress: bool = True,
) -> dict[str, float]:
    """The whole reproduction; returns accuracies and timings."""
    t0 = time.perf_counter()
    causal_model, sampler = hierarchical_equality_causal_model(embedding_dim=4, seed=seed)
    model, task_acc = train_mlp(causal_model, sampler, seed=seed)
    t1 = time.perf_counter()
    train = counterfactual_batches(causal_model, sampler, train_size, 256, seed=seed + 10)
    test = counterfactual_batches(causal_model, sampler, 3_072, 256, seed=seed + 20)

    torch.manual_seed(seed)
    das = wrap(model, pv.RotatedSpaceIntervention(embed_dim=16))
    losses = train_interchange(das, train, cross_entropy, epochs=epochs, lr=lr, progress=progress)
    das_iia = iia(das, test)
    vanilla_iia = iia(wrap(model, pv.VanillaIntervention(embed_dim=16)), test)
    t2 = time.perf_counter()
    return {
        "task_accuracy": task_acc,
        "das_iia": das_iia,
        "vanilla_iia": vanilla_iia,
        "first_loss": losses[0],
        "last_loss": sum(losses[-10:]) / 10,
        "mlp_seconds": t1 - t0,
        "das_seconds": t2 - t1,
    }


def main() -> None:
    r = run()
    print(f"MLP held-out task accuracy: {r['task_accuracy']:.4f} ({r['mlp_seconds']:.1f} s)")
    print(f"DAS loss {r['first_loss']:.3f} -> {r['last_loss']:.3f} ({r['das_seconds']:.1f} s)")
    print(f"IIA on held-out entities: DAS {r['das_iia']:.3f}  |  neurons {r['vanilla_iia']:.3f}")


if __name__ == "__main__":
    main()
