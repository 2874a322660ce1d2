"""Bad input gets a PyveneError naming the bad value and the valid choices; the wrapped model
is left exactly as it was, also after a call that raised inside a hook."""

from __future__ import annotations

import pytest
import torch
from conftest import ids

import pyvene as pv


def test_unknown_component_lists_valid_ones_and_closest(gpt2, llama):
    for model in (gpt2, llama):
        with pytest.raises(pv.UnknownComponentError) as err:
            pv.IntervenableModel({"layer": 0, "component": "mlp"}, model)
        msg = str(err.value)
        assert "'mlp'" in msg and "mlp_output" in msg and "block_output" in msg
        assert "Did you mean" in msg


def test_module_path_typo_lists_closest_modules(gpt2):
    with pytest.raises(pv.UnknownComponentError, match="transformer.h.0.mlp"):
        pv.IntervenableModel({"component": "transformer.h[0].mpl.output"}, gpt2)


def test_layer_out_of_range(gpt2):
    with pytest.raises(pv.LayerOutOfRangeError, match=r"layer 7 .*3 layers \(0\.\.2\)"):
        pv.IntervenableModel({"layer": 7, "component": "block_output"}, gpt2)


def test_head_unit_on_non_head_component(gpt2):
    with pytest.raises(pv.UnknownComponentError, match="head_"):
        pv.IntervenableModel({"layer": 0, "component": "mlp_output", "unit": "h"}, gpt2)


def test_config_errors():
    with pytest.raises(pv.ConfigError, match="Only one"):
        pv.RepresentationConfig(
            intervention_type=pv.ZeroIntervention, intervention=pv.ZeroIntervention()
        )
    with pytest.raises(pv.ConfigError, match="serial"):
        pv.IntervenableConfig(mode="sequential")
    with pytest.raises(pv.ConfigError, match="lyer"):
        pv.IntervenableConfig({"lyer": 3})
    with pytest.raises(pv.ConfigError, match="Did you mean 'VanillaIntervention'"):
        pv.get_intervention_class("VanilaIntervention")


@pytest.mark.parametrize(
    "locations,match",
    [
        ({"sources->base": ([[[1]], [[2]]], [[[1]], [[2]]])}, "2 entries for 1 intervention"),
        ({"sources->base": ([[1]], [[1]])}, "list of ints"),
        ({"sources->base": ([[[1]], [[1]], [[1]]], [[[1]], [[1]], [[1]]])}, "3 entries"),
        ({"sources->base": ([[[1], [2]]], [[[1], [2]]])}, "2 examples but the batch has 3"),
        ({"sources->base": ([[[1, 2]]], [[[1]]])}, "same number"),
        ({"base": 9}, "index 9 is out of range for size 5"),
        ({"source->base": 1}, "unknown unit_locations key"),
    ],
)
def test_bad_locations(gpt2, locations, match):
    pvm = pv.IntervenableModel({"layer": 0, "component": "block_output"}, gpt2)
    with pytest.raises(pv.LocationError, match=match):
        pvm(ids(3, 5, 0), [ids(3, 5, 1)], locations)


def test_dimension_mismatch(gpt2):
    pvm = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention},
        gpt2,
    )
    with pytest.raises(pv.DimensionMismatchError, match=r"\(7,\)"):
        pvm(ids(1, 5, 0), unit_locations={"base": 1}, source_representations=torch.ones(7))
    bad = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention": lambda b, s: b[..., :3]}, gpt2
    )
    with pytest.raises(pv.DimensionMismatchError, match="returned shape"):
        bad(ids(1, 5, 0), unit_locations={"base": 1})


def test_sources_count_mismatch(gpt2):
    pvm = pv.IntervenableModel({"layer": 0, "component": "block_output"}, gpt2)
    with pytest.raises(pv.ConfigError, match="Source length 2"):
        pvm(ids(1, 5, 0), [ids(1, 5, 1), ids(1, 5, 2)])


def hook_ids(model):
    return {
        (name, kind, hid)
        for name, module in model.named_modules()
        for kind, hooks in (("fwd", module._forward_hooks), ("pre", module._forward_pre_hooks))
        for hid in hooks
    }


def test_model_untouched_after_a_hook_raised_and_user_hooks_kept(gpt2):
    base = ids(2, 5, 3)
    before = gpt2(**base).logits.clone()
    seen = []
    user = gpt2.transformer.h[1].register_forward_hook(lambda *a: seen.append(1))
    before_hooks = hook_ids(gpt2)

    def boom(b, s):
        raise RuntimeError("boom")

    pvm = pv.IntervenableModel({"layer": 1, "component": "mlp_output", "intervention": boom}, gpt2)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            pvm(base, unit_locations={"base": 1})
        sources = [ids(2, 5, 4)]
        ok = pv.IntervenableModel({"layer": 1, "component": "block_output"}, gpt2)
        ok(base, sources, {"sources->base": 2})
        assert len(sources) == 1 and set(sources[0]) == {"input_ids"}  # not mutated
        after = gpt2(**base).logits
        torch.testing.assert_close(after, before, rtol=0, atol=0)
        assert seen, "the user's hook must still fire"
        assert hook_ids(gpt2) == before_hooks  # ours are gone, the user's (and HF's) remain
    finally:
        user.remove()


def test_wrapping_freezes_and_enable_restores(gpt2):
    pvm = pv.IntervenableModel({"layer": 0, "component": "block_output"}, gpt2)
    assert not any(p.requires_grad for p in gpt2.parameters())
    pvm.enable_model_gradients()
    assert all(p.requires_grad for p in gpt2.parameters())
    pvm.disable_model_gradients()
    assert not gpt2.training
