"""What a model family is: a declarative table of components (module path relative to the HF
base model, hook on input or output, slice of the last dim, head split, width), keyed by
``config.model_type``. One table serves XModel, XForCausalLM and XForSequenceClassification
because paths are relative to ``model.base_model``.

Component: one named entry of a family table (a recipe), which :func:`pyvene.families.resolve_site`
turns into a :class:`~pyvene.families.HookSite` for one model and layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

ConfigFn = Callable[[Any], int]


@dataclass(frozen=True)
class Interleaved:
    """Part ``index`` of a fused output whose last dim is laid out ``(groups, parts, width)``.

    GPT-NeoX's ``query_key_value`` output is ``(heads, 3, head_dim)``: Q, K and V of one head
    are adjacent, so the Q of all heads is not one slice; it is the strided view
    ``x.unflatten(-1, (heads, 3, head_dim))[..., 0, :]`` of shape ``(..., heads, head_dim)``.
    """

    groups: int
    parts: int
    index: int


@dataclass(frozen=True)
class Component:
    """One hookable tensor of a layer.

    ``path`` has a ``{layer}`` placeholder; ``hook`` is "input" (forward pre-hook, first
    argument) or "output" (forward hook, first element of a tuple output). ``part`` selects
    the component inside a fused output: the ``[start, end)`` slice of the last dim (GPT-2's
    Q|K|V thirds) or an :class:`Interleaved` part (GPT-NeoX's per-head Q/K/V); ``heads`` the
    number of heads the part splits into; ``dim`` the width the intervention sees per unit.

    ``tokens_from``: for modules that run on token-flattened ``(B * S, W)`` tensors (OPT's
    fc1 / activation_fn / fc2), the path template of the enclosing module whose first input
    is ``(B, S, D)``; hooks then see ``(B, S, W)`` (see :class:`pyvene.hooks.Side`).
    """

    path: str
    hook: str
    dim: ConfigFn
    part: Callable[[Any], tuple[int, int] | Interleaved] | None = None
    heads: ConfigFn | None = None
    doc: str = ""
    tokens_from: str | None = None
    # Multi-tower models (llava, blip, whisper): where this component lives and which
    # sub-config its dims come from. None = the family's default (``Family.root`` /
    # ``Family.config_path``). ``root`` lists candidate module paths under the base model,
    # the first that exists wins (BlipModel names its text tower ``text_model``,
    # BlipForQuestionAnswering ``text_encoder``); ``num_layers`` overrides the family's.
    root: tuple[str, ...] | None = None
    config_path: str | None = None
    num_layers: ConfigFn | None = None
    # A module that runs once per timestep (a recurrent cell): only unit "t" fits it, and the
    # engine counts its calls to know the timestep (see pyvene/recurrent.py).
    per_step: bool = False


@dataclass(frozen=True)
class StackSpec:
    """How a causal LM runs one decoder layer at a time: the fast sweep path (see
    :mod:`pyvene.analysis.stack`). Paths are relative to the HF base model.

    ``layers``: the decoder layer list; ``norm``: modules applied after the last layer, in
    order (a missing or None one is skipped: OPT's ``project_out``); ``rotary``: the rotary
    embedding module called ``(x, position_ids)`` (or ``(x, position_ids, layer_type)``), None
    for absolute positions added at the embedding; ``positional``: layers are called
    ``(hidden, cache, mask)`` (GPT-2, GPT-Neo) instead of by keyword; ``tail``: modules of the
    last layer whose first input can be cut to the last position (attention output
    projection, MLP); ``softcap``: config attribute of a final logit soft-cap (Gemma 2/3);
    ``window_inside``: the layers enforce their sliding window themselves (GPT-Neo's local
    attention buffer), so prompts longer than the window are fine; ``unsupported``: config ->
    why this config cannot use the path (None: it can)."""

    layers: str
    norm: tuple[str, ...]
    rotary: str | None = None
    positional: bool = False
    tail: tuple[str, ...] = ("self_attn.o_proj", "mlp")
    softcap: str | None = None
    window_inside: bool = False
    unsupported: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Family:
    """A model family: its components and how many layers a config has."""

    name: str
    model_types: tuple[str, ...]
    num_layers: ConfigFn
    components: dict[str, Component]
    notes: dict[str, str] = field(default_factory=dict)
    # Default for every component (see Component.root / Component.config_path): llava's
    # language model lives at ``language_model`` and reads its dims from ``text_config``.
    root: tuple[str, ...] = ()
    config_path: str = ""
    doc: str = ""
    # The fast sweep path (run layers l..L from a cached state), or why there is none.
    stack: StackSpec | None = None
    no_stack: str = ""
    # Called with (model, hooked module) for every site resolved on a model of this family,
    # e.g. to have a module the model does not always call run while it is hooked (GPT-2's
    # attn_dropout, see families/gpt2_attention.py).
    on_site: Callable[[Any, Any], Any] | None = None

    def component_root(self, name: str) -> tuple[str, ...]:
        spec = self.components[name]
        return self.root if spec.root is None else spec.root

    def component_config_path(self, name: str) -> str:
        spec = self.components[name]
        return self.config_path if spec.config_path is None else spec.config_path

    def layers_of(self, name: str, config: Any) -> int:
        """Number of layers ``name`` can be asked for (on the full model config)."""
        spec = self.components[name]
        sub = sub_config(config, self.component_config_path(name))
        return (spec.num_layers or self.num_layers)(sub)


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
    """Number of attention (query) heads from an HF config, whatever the family calls it."""
    return attr("num_attention_heads", "n_head", "num_heads")(config)


def num_kv_heads(config: Any) -> int:
    """Number of key/value heads (fewer than query heads under GQA; equal when unset)."""
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


def interleaved(index: int, parts: int, groups: ConfigFn) -> Callable[[Any], Interleaved]:
    """Part ``index`` of ``parts`` per group (``groups`` = heads): see :class:`Interleaved`."""
    return lambda c: Interleaved(groups(c), parts, index)


def sub_config(config: Any, path: str) -> Any:
    """``config.text_config`` for ``path="text_config"``; the config itself for ``""``."""
    for name in filter(None, path.split(".")):
        config = getattr(config, name)
    return config


def tower(
    components: dict[str, Component],
    root: tuple[str, ...] | str,
    config_path: str = "",
    prefix: str = "",
    num_layers: ConfigFn | None = None,
) -> dict[str, Component]:
    """The same table placed under another module (``root``, candidates tried in order) with
    dims from a sub-config; names get ``prefix`` (``"vision."`` -> ``"vision.block_output"``)."""
    roots = (root,) if isinstance(root, str) else tuple(root)
    return {
        prefix + name: replace(c, root=roots, config_path=config_path, num_layers=num_layers)
        for name, c in components.items()
    }


def split(start: ConfigFn, width: ConfigFn) -> Callable[[Any], tuple[int, int]]:
    """The ``[start, start + width)`` slice of a fused output (unequal parts: phi3's Q|K|V)."""
    return lambda c: (start(c), start(c) + width(c))
