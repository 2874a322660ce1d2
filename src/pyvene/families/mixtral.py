"""Mixtral (sparse MoE): llama-like attention; ``mlp_*`` on the sparse MoE block.

Per-expert components are not declared: in transformers >= 5 the experts are one fused
module (``mlp.experts`` holds 3-D weights; no per-expert submodule to hook), and the router
(``mlp.gate``) and experts see token-flattened (B * S, D) tensors, which position units
cannot address. Their raw tensors remain reachable by module path with no unit_locations
(``"layers.0.mlp.gate.output"`` = router logits (B * S, n_experts))."""

from __future__ import annotations

from .base import Family, attr
from .llama import LLAMA_COMPONENTS

MIXTRAL = Family(
    name="mixtral",
    model_types=("mixtral",),
    num_layers=attr("num_hidden_layers"),
    components={k: v for k, v in LLAMA_COMPONENTS.items() if k != "mlp_activation"},
    notes={
        **dict.fromkeys(
            ("mlp_activation", "expert_input", "expert_output", "router_output"),
            "Mixtral's experts are one fused module on token-flattened (B * S, D) tensors; "
            "use mlp_input / mlp_output (the sparse block), or module paths such as "
            "'layers.L.mlp.gate.output' without unit_locations",
        ),
    },
)
