"""The bundled research models (pyvene.models): MLP and GRU.

GRU: ``block_input`` / ``block_output`` are the (B, S, h) sequences entering / leaving layer
L (identity taps), usable with the "pos" unit. The per-timestep cell components of the
original (SPEC B 5.3: cell_input/output, reset/update/new gates, x2h/h2h and their thirds)
live on ``cells[L]``, which runs once per timestep on (B, h) tensors: they are ``per_step``
and take the recurrent unit "t" only (timestep = how many times the module already ran in
this forward; see pyvene/recurrent.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Component, ConfigFn, Family, attr, third

_h = attr("h_dim")

MLP = Family(
    name="mlp",
    model_types=("mlp",),
    num_layers=attr("n_layer"),
    components={
        "block_input": Component("h.{layer}", "input", _h),
        "block_output": Component("h.{layer}", "output", _h),
        "mlp_activation": Component("h.{layer}.act", "output", _h),
    },
    no_stack="research model without attention layers (sweeps run the whole model)",
)


def _h3(config: Any) -> int:
    return 3 * config.h_dim


_C = "cells.{layer}"
_STEP = "per timestep, unit 't'"


def _step(
    path: str,
    hook: str,
    dim: ConfigFn,
    part: Callable[[Any], tuple[int, int]] | None = None,
    doc: str = _STEP,
) -> Component:
    """A cell component: ``per_step`` (the module runs once per timestep)."""
    return Component(path, hook, dim, part=part, doc=doc, per_step=True)


GRU_CELL_COMPONENTS = {
    "cell_input": _step(_C, "input", _h, doc=_STEP + "; the cell's input x_t"),
    "cell_output": _step(_C, "output", _h, doc=_STEP + "; the new hidden state h_t"),
    "x2h_output": _step(f"{_C}.x2h", "output", _h3),
    "h2h_output": _step(f"{_C}.h2h", "output", _h3),
    **{
        f"{gate}_{side}_output": _step(f"{_C}.{side}", "output", _h, part=third(i, _h))
        for i, gate in enumerate(("reset", "update", "new"))
        for side in ("x2h", "h2h")
    },
    **{
        f"{gate}_gate_{hook}": _step(f"{_C}.{gate}_act", hook, _h)
        for gate in ("reset", "update", "new")
        for hook in ("input", "output")
    },
}

GRU = Family(
    name="gru",
    model_types=("gru",),
    num_layers=attr("n_layer"),
    components={
        "block_input": Component("layer_inputs.{layer}", "output", _h),
        "block_output": Component("layer_outputs.{layer}", "output", _h),
        **GRU_CELL_COMPONENTS,
    },
    no_stack="research model without attention layers (sweeps run the whole model)",
)
