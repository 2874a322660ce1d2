"""Mixtral (sparse MoE): llama-like attention; ``mlp_input`` / ``mlp_output`` are the sparse
MoE block's input and output, (B, S, D) per position like any MLP.

Per-expert components are deliberately not declared. In transformers >= 5 the experts are one
fused module (``mlp.experts``, 3-D weights, no per-expert submodule; its kernel may be swapped
by ``config._experts_implementation``), and in earlier versions each expert module receives
only the tokens routed to it, (n_routed, D) with n_routed varying per call and per expert:
no (batch, position) unit addresses either. What is left is whole-tensor access by module
path with no unit_locations (Collect the whole tensor, Zero it): ``layers.L.mlp.experts``
input / output is every token's routed mixture, token-flattened (B * S, D), and
``layers.L.mlp.gate.output`` the router logits (B * S, n_experts) -- read-only in effect: the
block routes on scores the router computes before returning, so patching the logits does not
change routing."""

from __future__ import annotations

from .base import Family, attr
from .llama import LLAMA_COMPONENTS, LLAMA_STACK

_NOTE = (
    "Mixtral has no per-expert (batch, position) tensors: transformers >= 5 fuses the experts "
    "into one module, and per-expert modules of older versions see only their routed tokens. "
    "Use mlp_input / mlp_output (the sparse block, per position), or module paths without "
    "unit_locations (Collect / Zero the whole tensor): 'layers.L.mlp.experts.output' (routed "
    "mixture, (B * S, D)), 'layers.L.mlp.gate.output' (router logits, (B * S, n_experts); "
    "patching them does not change routing)"
)

MIXTRAL = Family(
    name="mixtral",
    model_types=("mixtral",),
    num_layers=attr("num_hidden_layers"),
    components={k: v for k, v in LLAMA_COMPONENTS.items() if k != "mlp_activation"},
    stack=LLAMA_STACK,
    notes=dict.fromkeys(
        ("mlp_activation", "expert_input", "expert_output", "router_output"), _NOTE
    ),
)
