"""BERT-style encoders (bert, esm; also BLIP's text tower): ``encoder.layer``, attention as
``attention.self.{query,key,value}`` + ``attention.output`` (its input = the attention
value output), MLP as ``intermediate`` (dense + activation) and ``output`` (dense + residual
[+ LayerNorm in BERT])."""

from __future__ import annotations

from .base import Component, Family, attr, head_dim, num_heads

_d = attr("hidden_size")
_ffn = attr("intermediate_size")


def bert_components(act: str | None, layers: str = "encoder.layer") -> dict[str, Component]:
    """``act``: the activation module under ``intermediate`` (None: ``intermediate`` itself
    applies it, as in ESM)."""
    L = f"{layers}.{{layer}}"
    S = f"{L}.attention.self"

    def proj(name: str, heads: bool = False) -> Component:
        return Component(
            f"{S}.{name}", "output", head_dim if heads else _d, heads=num_heads if heads else None
        )

    return {
        "block_input": Component(L, "input", _d),
        "block_output": Component(L, "output", _d),
        "mlp_input": Component(f"{L}.intermediate", "input", _d),
        "mlp_activation": Component(
            f"{L}.intermediate.{act}" if act else f"{L}.intermediate", "output", _ffn
        ),
        "mlp_output": Component(
            f"{L}.output", "output", _d, doc="after the residual add (and LayerNorm in BERT)"
        ),
        "attention_value_output": Component(f"{L}.attention.output", "input", _d),
        "head_attention_value_output": Component(
            f"{L}.attention.output", "input", head_dim, heads=num_heads
        ),
        "attention_output": Component(f"{L}.attention", "output", _d),
        "attention_input": Component(f"{L}.attention", "input", _d),
        "query_output": proj("query"),
        "key_output": proj("key"),
        "value_output": proj("value"),
        "head_query_output": proj("query", True),
        "head_key_output": proj("key", True),
        "head_value_output": proj("value", True),
    }


_NO_STACK = (
    "bidirectional encoder: every position attends to later ones, so no causal prefix can be "
    "reused and a patch changes all positions (sweeps run the whole model)"
)

BERT = Family(
    name="bert",
    model_types=("bert", "roberta"),
    num_layers=attr("num_hidden_layers"),
    components=bert_components("intermediate_act_fn"),
    no_stack=_NO_STACK,
)

ESM = Family(
    name="esm",
    model_types=("esm",),
    num_layers=attr("num_hidden_layers"),
    components=bert_components(None),
    no_stack=_NO_STACK,
)
