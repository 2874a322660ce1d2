"""A small, explicit training loop for interchange-intervention training (DAS, IIT) and the
interchange-intervention accuracy (IIA) metric.

A *batch* is a dict with the arguments of one intervened call plus what the loss needs::

    {"base": {...} or ids, "sources": [src, ...], "unit_locations": {...} (optional),
     "subspaces": [...] (optional), "labels": tensor (counterfactual labels), ...}

``loss_fn(outputs, batch)`` gets the intervened outputs (what the wrapped model returns) and
the batch, and returns a scalar. Example (DAS on a classifier)::

    losses = pv.training.train_interchange(
        intervenable, batches, lambda out, b: F.cross_entropy(out.logits, b["labels"]),
        epochs=3, lr=1e-3)
    acc = pv.training.iia(intervenable, test_batches)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from .errors import ConfigError

Batch = dict[str, Any]

__all__ = ["default_logits", "intervened_outputs", "iia", "train_interchange"]


def intervened_outputs(intervenable: Any, batch: Batch) -> Any:
    """The intervened outputs of one batch (the second element of the call's result)."""
    return intervenable(
        batch["base"],
        batch.get("sources"),
        unit_locations=batch.get("unit_locations"),
        subspaces=batch.get("subspaces"),
        source_representations=batch.get("source_representations"),
    )[1]


def default_logits(outputs: Any) -> torch.Tensor:
    """``(B, C)`` class scores from a model output: ``.logits`` (or the tensor / first element
    of a tuple); a ``(B, S, V)`` LM output is read at the last position."""
    logits = getattr(outputs, "logits", None)
    if logits is None:
        logits = outputs if isinstance(outputs, torch.Tensor) else outputs[0]
    return logits[:, -1] if logits.dim() == 3 else logits


def train_interchange(
    intervenable: Any,
    batches: Iterable[Batch] | Callable[[int], Iterable[Batch]],
    loss_fn: Callable[[Any, Batch], torch.Tensor],
    epochs: int = 1,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    temperature: tuple[float, float] | None = None,
    progress: bool = True,
) -> list[float]:
    """Train the intervenable's trainable parameters (interventions, plus model weights only if
    they were unfrozen) with Adam; returns the loss of every step.

    ``batches``: a re-iterable collection of batches, or ``f(epoch) -> iterable`` for fresh
    data each epoch. ``temperature=(start, end)`` anneals ``set_temperature`` linearly over
    all steps (Boundless DAS / sigmoid masks; needs ``len(batches)``). ``progress`` shows a
    tqdm bar (turn it off in tests and scripts). Train/eval modes are left as they are
    (wrapping puts the model in eval mode, so dropout stays off)."""
    params = [p for p in intervenable.get_trainable_parameters() if p.requires_grad]
    if optimizer is None:
        optimizer = torch.optim.Adam(params, lr=lr)
    total = None
    if temperature is not None:
        if callable(batches):
            raise ConfigError("temperature annealing needs a sized list of batches, not a function")
        total = epochs * len(batches)  # type: ignore[arg-type]
        schedule = torch.linspace(temperature[0], temperature[1], max(total, 1))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="train_interchange")
    losses: list[float] = []
    step = 0
    for epoch in range(epochs):
        data = batches(epoch) if callable(batches) else batches
        for batch in data:
            if temperature is not None:
                intervenable.set_temperature(schedule[min(step, total - 1)])
            loss = loss_fn(intervened_outputs(intervenable, batch), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}")
    if bar is not None:
        bar.close()
    return losses


@torch.no_grad()
def iia(
    intervenable: Any,
    batches: Iterable[Batch],
    logits_fn: Callable[[Any], torch.Tensor] = default_logits,
    label_key: str = "labels",
) -> float:
    """Interchange-intervention accuracy: the fraction of examples whose intervened prediction
    (``argmax`` of ``logits_fn(outputs)``) equals the causal model's counterfactual label
    ``batch[label_key]`` (class ids ``(B,)`` or ``(B, 1)``)."""
    right = seen = 0
    for batch in batches:
        pred = logits_fn(intervened_outputs(intervenable, batch)).argmax(-1)
        labels = batch[label_key].reshape(-1).to(pred.device)
        right += int((pred == labels).sum())
        seen += labels.numel()
    return right / max(seen, 1)
