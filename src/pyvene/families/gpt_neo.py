"""GPT-Neo: blocks under ``h``; q/k/v/out projections nested in ``attn.attention`` (the
original pyvene table missed that level)."""

from __future__ import annotations

from .base import Component, Family, StackSpec, attr, head_dim, num_heads

_d = attr("hidden_size")
_A = "h.{layer}.attn.attention"


def _mlp_width(config) -> int:
    return config.intermediate_size or 4 * config.hidden_size


def _eager_only(config) -> str | None:
    """Eager attention only (local layers mask their window with a buffer there), any length."""
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl != "eager":
        return f"attention implementation {impl!r} (the fast path needs 'eager')"
    return None


GPT_NEO = Family(
    name="gpt_neo",
    model_types=("gpt_neo",),
    num_layers=attr("num_layers"),
    components={
        "block_input": Component("h.{layer}", "input", _d),
        "block_output": Component("h.{layer}", "output", _d),
        "mlp_activation": Component("h.{layer}.mlp.act", "output", _mlp_width),
        "mlp_output": Component("h.{layer}.mlp", "output", _d),
        "mlp_input": Component("h.{layer}.mlp", "input", _d),
        "attention_value_output": Component(f"{_A}.out_proj", "input", _d),
        "head_attention_value_output": Component(
            f"{_A}.out_proj", "input", head_dim, heads=num_heads
        ),
        "attention_output": Component("h.{layer}.attn", "output", _d),
        "attention_input": Component("h.{layer}.attn", "input", _d),
        "query_output": Component(f"{_A}.q_proj", "output", _d),
        "key_output": Component(f"{_A}.k_proj", "output", _d),
        "value_output": Component(f"{_A}.v_proj", "output", _d),
        "head_query_output": Component(f"{_A}.q_proj", "output", head_dim, heads=num_heads),
        "head_key_output": Component(f"{_A}.k_proj", "output", head_dim, heads=num_heads),
        "head_value_output": Component(f"{_A}.v_proj", "output", head_dim, heads=num_heads),
    },
    stack=StackSpec(
        "h",
        ("ln_f",),
        positional=True,
        tail=("attn.attention.out_proj", "mlp"),
        window_inside=True,
        unsupported=_eager_only,
    ),  # fmt: skip
)
