"""The bundled research models (pyvene.models): MLP and GRU.

GRU: ``block_input`` / ``block_output`` are the (B, S, h) sequences entering / leaving layer
L (identity taps), usable with the "pos" unit. The per-timestep cell components of the
original (cell_input/output, reset/update/new gates, x2h/h2h) fire once per timestep on
``cells[L]``; they need the recurrent "t" unit, which the engine does not support yet --
they are declared in ``GRU_CELL_COMPONENTS`` (not registered) and named in the error."""

from __future__ import annotations

from .base import Component, Family, attr, third

_h = attr("h_dim")

MLP = Family(
    name="mlp",
    model_types=("mlp",),
    num_layers=attr("n_layer"),
    layers_path="h",
    components={
        "block_input": Component("h.{layer}", "input", _h),
        "block_output": Component("h.{layer}", "output", _h),
        "mlp_activation": Component("h.{layer}.act", "output", _h),
    },
)


def _h3(config) -> int:
    return 3 * config.h_dim


_C = "cells.{layer}"
GRU_CELL_COMPONENTS = {
    "cell_input": Component(_C, "input", _h),
    "cell_output": Component(_C, "output", _h),
    "x2h_output": Component(f"{_C}.x2h", "output", _h3),
    "h2h_output": Component(f"{_C}.h2h", "output", _h3),
    **{
        f"{gate}_{side}_output": Component(f"{_C}.{side}", "output", _h, part=third(i, _h))
        for i, gate in enumerate(("reset", "update", "new"))
        for side in ("x2h", "h2h")
    },
    **{
        f"{gate}_gate_{hook}": Component(f"{_C}.{gate}_act", hook, _h)
        for gate in ("reset", "update", "new")
        for hook in ("input", "output")
    },
}

_T_NOTE = (
    "This is a per-timestep GRU cell component (unit 't'), which the engine does not support "
    "yet; use block_input / block_output with unit 'pos'"
)

GRU = Family(
    name="gru",
    model_types=("gru",),
    num_layers=attr("n_layer"),
    layers_path="cells",
    components={
        "block_input": Component("layer_inputs.{layer}", "output", _h),
        "block_output": Component("layer_outputs.{layer}", "output", _h),
    },
    notes=dict.fromkeys(GRU_CELL_COMPONENTS, _T_NOTE),
)
