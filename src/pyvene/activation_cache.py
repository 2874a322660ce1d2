"""``pv.collect``: record many activations in one forward pass (TransformerLens's
``run_with_cache`` for pyvene users), keyed by ``(component, layer)``.

Built on the ordinary engine: one :class:`~pyvene.CollectIntervention` per requested site in an
:class:`~pyvene.IntervenableModel`, one call with ``unit_locations=None`` (the whole tensor), so
the activations are exactly what an intervention at that site would see and the hooks are gone
when it returns. The model is left as it was (its train / eval mode and ``requires_grad``
flags, which wrapping would otherwise change).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .config import RepresentationConfig
from .errors import ConfigError, PyveneError, choices_message
from .families import components_of, family_of, is_module_path
from .intervenable import IntervenableModel
from .interventions.basic import CollectIntervention

Key = tuple[str, "int | None"]


class ActivationCache(Mapping):
    """``(component, layer) -> Tensor`` from :func:`collect`, in request order.

    Position components give ``[batch, seq, width]``; ``head_*`` components
    ``[batch, heads, seq, head_dim]``; a module-path component is keyed ``(path, None)``.
    ``cache.output`` is the model's own output of the same forward (logits, ...).
    """

    def __init__(self, activations: dict[Key, torch.Tensor], output: Any) -> None:
        self._activations = activations
        self.output = output

    def __getitem__(self, key: Key) -> torch.Tensor:
        try:
            return self._activations[key]
        except (KeyError, TypeError):
            names = [f"({c!r}, {layer})" for c, layer in self._activations]
            raise KeyError(choices_message("activation key", key, names)) from None

    def __iter__(self) -> Iterator[Key]:
        return iter(self._activations)

    def __len__(self) -> int:
        return len(self._activations)

    @property
    def components(self) -> list[str]:
        """The components present, in request order."""
        return list(dict.fromkeys(c for c, _ in self._activations))

    def layers(self, component: str) -> list[int | None]:
        """The layers recorded for ``component``, in request order."""
        return [layer for c, layer in self._activations if c == component]

    def stack(self, component: str) -> torch.Tensor:
        """``component`` at every recorded layer as one tensor ``[layers, *activation shape]``
        (layers in the order of :meth:`layers`)."""
        if component not in self.components:
            raise KeyError(choices_message("component", component, self.components))
        return torch.stack(
            [self._activations[(component, layer)] for layer in self.layers(component)]
        )

    def __repr__(self) -> str:
        rows = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self._activations.items())
        return f"ActivationCache({rows})"


def _as_list(value: Any) -> list:
    return [value] if isinstance(value, (str, int)) else list(value)


def _sites(model: nn.Module, components: Any, layers: Any) -> list[Key]:
    """The requested (component, layer) pairs, validated against the model's family table."""
    comps = _as_list(components)
    if not comps:
        raise ConfigError("collect() needs at least one component, e.g. 'block_output'")
    named = [c for c in comps if not is_module_path(c)]
    family = family_of(model)
    if named and family is None:
        raise ConfigError(
            f"{type(model).__name__} has no registered family, so named components such as "
            f"{named[0]!r} are unknown; pass module paths instead (e.g. 'layers.0.mlp.output')"
        )
    valid = components_of(model) if named else []
    for c in named:
        if c not in valid:
            raise ConfigError(choices_message(f"component of {type(model).__name__}", c, valid))
    if layers is None:
        layer_list = list(range(family.num_layers(model.config))) if named else []
    else:
        layer_list = [int(x) for x in _as_list(layers)]
    keys: list[Key] = []
    for c in comps:
        keys.extend([(c, None)] if is_module_path(c) else [(c, layer) for layer in layer_list])
    return list(dict.fromkeys(keys))  # a site asked for twice is recorded once


def collect(
    model: nn.Module,
    inputs: Any,
    components: str | Sequence[str] = "block_output",
    layers: int | Sequence[int] | None = None,
) -> ActivationCache:
    """Run ``model`` once on ``inputs`` and record ``components`` at ``layers``.

    ``inputs``: a token-id tensor ``[batch, seq]`` or a dict of model inputs (a tokenizer's
    output). ``components``: one name or a list (``pv.components_of(model)`` lists them, e.g.
    ``"block_output"``, ``"mlp_output"``, ``"head_attention_value_output"``), or module
    paths ending in ``.output`` / ``.input`` (any ``nn.Module``, e.g.
    ``"encoder.layer.3.output"``). ``layers``: an int, a list, or None for every layer. Gradients follow the ambient mode: wrap the call in ``torch.no_grad()`` to
    keep no graph.

    Returns an :class:`ActivationCache`: ``cache["block_output", 3]`` is the residual stream
    after layer 3, ``cache.stack("block_output")`` all layers at once, ``cache.output`` the
    model's output. Example::

        cache = pv.collect(model, tokenizer("Hello world", return_tensors="pt"),
                           components=["block_output", "mlp_output"], layers=[0, 5])
    """
    keys = _sites(model, components, layers)
    reps = [
        RepresentationConfig(
            layer=0 if layer is None else layer,
            component=component,
            intervention_type=CollectIntervention,
        )
        for component, layer in keys
    ]
    training = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        pvm = IntervenableModel(reps, model)
        for p, flag in grads:  # wrapping froze the weights and set eval(): undo before running
            p.requires_grad_(flag)
        for m, flag in training:
            m.training = flag
        base = inputs if isinstance(inputs, Mapping) else {"input_ids": inputs}
        (_, collected), output = pvm(dict(base), unit_locations=None)
    finally:
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, flag in training:
            m.training = flag
    if len(collected) != len(keys):
        raise PyveneError(
            f"collect() expected one activation per site ({len(keys)}) but the forward produced "
            f"{len(collected)}: a module that runs several times per forward (a recurrent cell) "
            "needs an IntervenableModel with CollectIntervention and unit 't'"
        )
    return ActivationCache(dict(zip(keys, collected)), output)


__all__ = ["ActivationCache", "Key", "collect"]
