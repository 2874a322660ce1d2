"""Conformance of every registered family table: for each model type a tiny seeded random model
(no downloads), and for every component of its table:

* Collect (no locations) equals what a plain torch hook reads on the submodule, reached here by
  attribute access written in this file (not through pyvene's resolver), split the way this
  file says (fused slices, heads);
* the declared width and head split match that tensor;
* a Vanilla patch at chosen positions (heads x positions for head components) equals a manual
  hook patch.

Llama-like types use GQA (4 query heads, 2 key/value heads) and head_dim 16 != hidden/heads 8.
GPT-NeoX's fused QKV is checked against a plain ``view(B, S, H, 3, Dh)``; OPT's token-flattened
MLP tensors against a plain ``view(B, S, W)`` of the (B * S, W) tensor.
"""

from __future__ import annotations

import pytest
import torch
import transformers as T
from conftest import hooked
from family_refs import (
    cases,
    layer_of,
    model_for,
    out_tensor,
    read,
    ref_view,
    refs_for,
    sub_config,
    walk,
)

import pyvene as pv
from pyvene.families import FAMILIES


# --------------------------------------------------------------------------- tests
def test_every_registered_component_has_a_reference():
    for model_type in FAMILIES:
        assert sorted(refs_for(model_type)) == sorted(FAMILIES[model_type].components), model_type


@pytest.mark.parametrize("model_type,component", list(cases()))
def test_collect_width_and_heads_match_plain_hook(model_type, component):
    model, make_inputs = model_for(model_type)
    ref = refs_for(model_type)[component]
    config = sub_config(model, component)
    inputs = make_inputs(2, 1)
    view = ref_view(read(model, ref, inputs), config, ref[2], ref[3], batch=2)
    is_head = ref[3] is not None
    pvm = pv.IntervenableModel(
        {"layer": layer_of(ref), "component": component, "unit": "h.pos" if is_head else "pos",
         "intervention_type": pv.CollectIntervention}, model,
    )  # fmt: skip
    (_, got), _ = pvm(inputs)
    expect = view.permute(0, 2, 1, 3) if is_head else view.flatten(2)
    torch.testing.assert_close(got[0], expect, rtol=0, atol=0)
    site = pvm.describe()["interventions"][pvm.sorted_keys[0]]
    assert model.get_submodule(site["module"]) is walk(model, ref[0], layer_of(ref))
    assert site["hook"] == ref[1]
    assert site["dim"] == expect.shape[-1]
    assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == expect.shape[-1]
    assert site["heads"] == (ref[3](config) if is_head else None)


def _positions(seq):
    if seq >= 3:
        return [[0, 2], [seq - 1, 1]], [[1, seq - 1], [2, 0]]
    return [[0], [0]], [[0], [0]]


@pytest.mark.parametrize("model_type,component", list(cases()))
def test_vanilla_patch_equals_manual_patch(model_type, component):
    model, make_inputs = model_for(model_type)
    ref = refs_for(model_type)[component]
    path, side, part, heads = ref
    config = sub_config(model, component)
    base, source = make_inputs(2, 2), make_inputs(2, 3)
    src = ref_view(read(model, ref, source), config, part, heads, batch=2)
    spos, bpos = _positions(src.shape[1])
    hsel = [[1], [0]] if heads is not None else None

    def patch(x):
        x = x.clone()
        v = ref_view(x, config, part, heads, batch=2)
        for b in range(2):
            for s_p, b_p in zip(spos[b], bpos[b]):
                if hsel is None:
                    v[b, b_p] = src[b, s_p]
                else:
                    for h in hsel[b]:
                        v[b, b_p, h] = src[b, s_p, h]
        return x

    handle = hooked(walk(model, path, layer_of(ref)), side, patch)
    try:
        with torch.no_grad():
            expected = out_tensor(model(**base))
    finally:
        handle.remove()
    if heads is not None:
        unit, locs = "h.pos", {"sources->base": ([[hsel, spos]], [[hsel, bpos]])}
    else:
        unit, locs = "pos", {"sources->base": ([spos], [bpos])}
    pvm = pv.IntervenableModel(
        {"layer": layer_of(ref), "component": component, "unit": unit}, model
    )
    with torch.no_grad():
        _, out = pvm(base, [source], locs)
    torch.testing.assert_close(out_tensor(out), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "model_type,component,fragment",
    [
        ("mamba", "attention_output", "no attention"),
        ("mamba", "mlp_output", "mixer_output"),
        ("mixtral", "mlp_activation", "fuses the experts"),
        ("mixtral", "expert_output", "only their routed tokens"),
        ("opt", "mixer_output", "mlp_output"),
    ],
)
def test_missing_component_says_so_and_lists_components(model_type, component, fragment):
    model, _ = model_for(model_type)
    with pytest.raises(pv.UnknownComponentError) as err:
        pv.IntervenableModel({"layer": 0, "component": component}, model)
    msg = str(err.value)
    assert f"have no component {component!r}" in msg and fragment in msg
    assert "block_output" in msg  # lists the family's components


def test_blip_model_text_tower_root_candidates():
    """BlipModel names its text tower ``text_model``; the same table finds it."""
    model, _ = model_for("blip")
    blip = T.BlipModel(model.config).eval()
    pvm = pv.IntervenableModel({"layer": 1, "component": "block_output"}, blip)
    module = pvm.describe()["interventions"][pvm.sorted_keys[0]]["module"]
    assert blip.get_submodule(module) is blip.text_model.encoder.layer[1]


def test_introspection_lists_resolved_components():
    from pyvene.families.introspect import format_components, list_components

    model, _ = model_for("phi3")
    rows = {r["component"]: r for r in list_components(model, layer=1)}
    assert set(rows) == set(FAMILIES["phi3"].components)
    key = rows["head_key_output"]
    assert key["module"] == "model.layers.1.self_attn.qkv_proj" and key["hook"] == "output"
    assert key["heads"] == 2 and key["dim"] == 8 and key["part"] == (32, 48)
    assert "head_key_output" in format_components(model)


def test_docs_table_lists_every_family():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "docs" / "generate_families_table.py"
    spec = importlib.util.spec_from_file_location("gen_families", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.render()
    for model_type, family in FAMILIES.items():
        assert f"`{model_type}`" in text and f"## {family.name}" in text
