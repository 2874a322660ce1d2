"""What a model family is: a declarative table of components (module path relative to the HF
base model, hook on input or output, slice of the last dim, head split, width), keyed by
``config.model_type``. One table serves XModel, XForCausalLM and XForSequenceClassification
because paths are relative to ``model.base_model``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ConfigFn = Callable[[Any], int]


@dataclass(frozen=True)
class Component:
    """One hookable tensor of a layer.

    ``path`` has a ``{layer}`` placeholder; ``hook`` is "input" (forward pre-hook, first
    argument) or "output" (forward hook, first element of a tuple output). ``part`` gives the
    ``[start, end)`` slice of the last dim (a fused QKV projection); ``heads`` the number of
    heads the slice splits into; ``dim`` the width the intervention sees per unit.
    """

    path: str
    hook: str
    dim: ConfigFn
    part: Callable[[Any], tuple[int, int]] | None = None
    heads: ConfigFn | None = None
    doc: str = ""


@dataclass(frozen=True)
class Family:
    """A model family: its components and how many layers a config has."""

    name: str
    model_types: tuple[str, ...]
    num_layers: ConfigFn
    components: dict[str, Component]
    layers_path: str = "layers"
    notes: dict[str, str] = field(default_factory=dict)


def attr(*names: str) -> ConfigFn:
    """First config attribute among ``names`` that is set (not None)."""

    def get(config: Any) -> int:
        for name in names:
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        raise AttributeError(f"config {type(config).__name__} has none of {names}")

    return get


def num_heads(config: Any) -> int:
    return attr("num_attention_heads", "n_head", "num_heads")(config)


def num_kv_heads(config: Any) -> int:
    value = getattr(config, "num_key_value_heads", None)
    return int(value) if value is not None else num_heads(config)


def head_dim(config: Any) -> int:
    """``config.head_dim`` when set (hidden != heads * head_dim in Gemma, Qwen3...), else
    hidden / heads."""
    value = getattr(config, "head_dim", None)
    if value is not None:
        return int(value)
    return attr("hidden_size", "n_embd", "d_model")(config) // num_heads(config)


def third(index: int, width: ConfigFn) -> Callable[[Any], tuple[int, int]]:
    """Slice ``index`` of three equal parts of a fused QKV output of per-part ``width``."""
    return lambda c: (index * width(c), (index + 1) * width(c))
