"""The call pipeline's seams: the public plan an IntervenableModel builds once, per-call
results returned (the original's last-call attributes are read-only views), keywords refused
with the closest valid name, and bad call arguments refused with a PyveneError naming the
value. Expected values come from plain torch hooks on the same model."""

from __future__ import annotations

import pytest
import torch
from conftest import captured, hooked, ids

import pyvene as pv


def block_output(model, base, layer):
    """The residual stream after ``layer``, read with a plain torch hook."""
    return captured(model, model.transformer.h[layer], "output", base)


def collect_pvm(model, layer=1):
    return pv.IntervenableModel(
        {"layer": layer, "component": "block_output", "intervention_type": pv.CollectIntervention},
        model,
    )


def test_plan_is_public_and_matches_the_model(gpt2):
    reps = [
        {"layer": 0, "component": "block_output", "group_key": 1},
        {"layer": 2, "component": "mlp_output", "group_key": 0},
        {"layer": 1, "component": "block_output", "group_key": 1},
    ]
    pvm = pv.IntervenableModel(reps, gpt2)
    plan = pvm.plan
    assert plan.keys == pvm.sorted_keys and len(plan.slots) == 3
    assert [s.site.module for s in plan.slots] == [
        gpt2.transformer.h[0], gpt2.transformer.h[2].mlp, gpt2.transformer.h[1],
    ]  # fmt: skip
    assert plan.n_groups == 2 and [s.group for s in plan.slots] == [1, 0, 1]
    assert plan.groups == pvm._intervention_group == {1: [plan.keys[0], plan.keys[2]], 0: [plan.keys[1]]}  # fmt: skip
    assert plan.mode == pvm.mode == "parallel" and plan.has_use_cache and plan.token_ids
    assert [s.intervention for s in plan.slots] == list(pvm.interventions.values())


def test_replacing_an_intervention_repoints_its_slot(gpt2):
    pvm = pv.IntervenableModel({"layer": 1, "component": "block_output"}, gpt2)
    key = pvm.sorted_keys[0]
    new = pv.ZeroIntervention()
    pvm.interventions[key] = new
    assert pvm.plan.slots[0].intervention is new
    base = ids(2, 5, 0)
    _, out = pvm(base, unit_locations={"base": 3})
    handle = hooked(gpt2.transformer.h[1], "output", lambda t: torch.cat([t[:, :3], 0 * t[:, 3:4], t[:, 4:]], 1))  # fmt: skip
    try:
        with torch.no_grad():
            want = gpt2(**base).logits
    finally:
        handle.remove()
    torch.testing.assert_close(out.logits, want)


def test_collected_values_are_returned_and_the_last_call_is_a_read_only_view(gpt2):
    pvm = collect_pvm(gpt2)
    base = ids(2, 6, 3)
    (_, collected), _ = pvm(base, unit_locations={"base": [[[1, 4]] * 2]})
    want = block_output(gpt2, base, 1)[:, [1, 4]]
    torch.testing.assert_close(collected[0], want)
    torch.testing.assert_close(pvm.activations[pvm.sorted_keys[0]], want)
    assert pvm.get_cached_activations() is pvm.activations
    with pytest.raises(AttributeError):
        pvm.activations = {}
    with pytest.raises(AttributeError):
        pvm.full_intervention_outputs = []
    plain = pv.IntervenableModel({"layer": 1, "intervention_type": pv.ZeroIntervention}, gpt2)
    plain(base, unit_locations={"base": 0})
    assert plain.activations == {} and plain.hot_activations == {}
    assert pvm.activations  # another model's call leaves this one's view alone


def test_full_intervention_outputs_hold_the_last_calls_latents(gpt2):
    def latent(b, s):
        return pv.InterventionOutput(output=2 * b, latent=b.sum(-1))

    pvm = pv.IntervenableModel({"layer": 0, "component": "block_output", "intervention": latent}, gpt2)  # fmt: skip
    base = ids(1, 5, 2)
    _, out = pvm(base, unit_locations={"base": 2})
    (full,) = pvm.full_intervention_outputs
    torch.testing.assert_close(full.latent, block_output(gpt2, base, 0)[:, [2]].sum(-1))
    handle = hooked(gpt2.transformer.h[0], "output", lambda t: torch.cat([t[:, :2], 2 * t[:, 2:3], t[:, 3:]], 1))  # fmt: skip
    try:
        with torch.no_grad():
            want = gpt2(**base).logits
    finally:
        handle.remove()
    torch.testing.assert_close(out.logits, want)
    pvm(base, unit_locations={"base": 2})
    assert len(pvm.full_intervention_outputs) == 1  # the last call's, not accumulated


def test_generate_and_forward_share_the_prepare_path(gpt2):
    """The same source and location normalisation: a prompt-only generate equals forward's
    first decoding choice, and both refuse the same bad source count."""
    pvm = pv.IntervenableModel([{"layer": 1}, {"layer": 2}], gpt2)
    base, source = ids(1, 5, 4), ids(1, 5, 5)
    _, out = pvm(base, [source, source], unit_locations={"sources->base": 3})
    _, gen = pvm.generate(
        base, [source, source], unit_locations={"sources->base": 3}, intervene_on_prompt=True,
        max_new_tokens=1, do_sample=False,
    )  # fmt: skip
    assert gen[0, -1].item() == out.logits[0, -1].argmax().item()
    for call in (pvm, pvm.generate):
        with pytest.raises(pv.ConfigError, match="Source length 3"):
            call(base, [source] * 3, unit_locations={"sources->base": 3})


@pytest.mark.parametrize(
    "make,bad,near",
    [
        (
            lambda m, kw: pv.IntervenableModel({"layer": 0}, m, **kw),
            "batch_source",
            "batch_sources",
        ),  # fmt: skip
        (lambda m, kw: pv.IntervenableModel({"layer": 0}, m, **kw), "use_fats", "use_fast"),
        (lambda m, kw: pv.IntervenableConfig({"layer": 0}, **kw), "modes", "mode"),
        (
            lambda m, kw: pv.IntervenableConfig({"layer": 0}, **kw),
            "intervention_type",
            "intervention_types",
        ),  # fmt: skip
    ],
)
def test_unknown_keywords_are_refused_with_the_closest_name(gpt2, make, bad, near):
    with pytest.raises(pv.ConfigError) as err:
        make(gpt2, {bad: False})
    assert f"unknown keyword {bad!r}; did you mean {near!r}?" in str(err.value)


def test_the_originals_keywords_are_accepted(gpt2):
    pvm = pv.IntervenableModel({"layer": 0}, gpt2, use_fast=True, as_adaptor=False)
    assert pvm.use_fast and pvm.plan.slots[0].intervention.use_fast and not pvm.as_adaptor
    with pytest.warns(UserWarning, match="intervenables_sort_fn is not used"):
        pv.IntervenableModel({"layer": 0}, gpt2, intervenables_sort_fn=lambda m, r: [])
    config = pv.IntervenableConfig({"layer": 0}, transformers_version="4.40.0", return_dict=True)
    assert config.transformers_version == "4.40.0" and not hasattr(config, "extra")


def test_generate_refuses_a_length_that_is_not_an_int(gpt2):
    pvm = pv.IntervenableModel({"layer": 0, "intervention_type": pv.ZeroIntervention}, gpt2)
    with pytest.raises(pv.ConfigError, match=r"max_new_tokens='x'.*non-negative int"):
        pvm.generate(ids(1, 4, 0), max_new_tokens="x")
    with pytest.raises(pv.ConfigError, match=r"num_beams=2\.5"):
        pvm.generate(ids(1, 4, 0), max_new_tokens=2, num_beams=2.5)


def test_float_input_ids_are_refused_before_the_model_runs(gpt2):
    pvm = pv.IntervenableModel({"layer": 0}, gpt2)
    base = {"input_ids": torch.rand(1, 4)}
    with pytest.raises(pv.ConfigError, match=r"base input_ids is a float32 tensor.*\.long\(\)"):
        pvm(base, [ids(1, 4, 0)], unit_locations={"sources->base": 1})
    with pytest.raises(pv.ConfigError, match="source input_ids is a float64"):
        pvm(ids(1, 4, 0), [{"input_ids": torch.rand(1, 4, dtype=torch.float64)}])


@pytest.mark.parametrize("bad", [None, "", 3])
def test_saving_to_a_non_path_names_the_value(gpt2, bad):
    pvm = pv.IntervenableModel({"layer": 0}, gpt2)
    for call in (pvm.save, pvm.save_intervention, pvm.load_intervention):
        with pytest.raises(pv.SerializationError, match=rf"must be a folder path.*got {bad!r}"):
            call(bad)
    with pytest.raises(pv.SerializationError, match=rf"got {bad!r}"):
        pv.IntervenableModel.load(bad, gpt2)


def test_a_layer_that_is_not_an_int_names_the_value_and_the_range(gpt2):
    with pytest.raises(pv.LayerOutOfRangeError, match=r"layer 'a'.*3 layers \(0\.\.2\)"):
        pv.IntervenableModel({"layer": "a", "component": "block_output"}, gpt2)
