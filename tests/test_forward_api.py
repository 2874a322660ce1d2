"""IntervenableModel.forward: return shapes, sources, groups, modes, source representations,
subspaces, early-stopped source runs — each against plain hooks or closed forms."""

from __future__ import annotations

import pytest
import torch
from conftest import hooked, ids

import pyvene as pv


def hidden(model, inputs, layer):
    """Output of block ``layer`` (independent: output_hidden_states; not the last block,
    whose hidden state has the final norm applied)."""
    return model(**inputs, output_hidden_states=True).hidden_states[layer + 1]


def patched_logits(model, module, fn, inputs):
    def hook(mod, args, out):
        return fn(out[0] if isinstance(out, tuple) else out)

    handle = module.register_forward_hook(hook)
    try:
        return model(**inputs).logits
    finally:
        handle.remove()


def test_collect_return_shapes_and_return_dict(gpt2):
    base = ids(2, 5, 1)
    pvm = pv.IntervenableModel(
        [
            {"layer": 0, "component": "block_output", "intervention_type": pv.CollectIntervention},
            {"layer": 1, "component": "block_output", "intervention_type": pv.CollectIntervention},
        ],
        gpt2,
    )
    (orig, collected), out = pvm(base, unit_locations={"base": 3}, output_original_output=True)
    torch.testing.assert_close(orig.logits, gpt2(**base).logits)
    torch.testing.assert_close(out.logits, gpt2(**base).logits)
    assert [c.shape for c in collected] == [(2, 1, 24), (2, 1, 24)]
    torch.testing.assert_close(collected[1][:, 0], hidden(gpt2, base, 1)[:, 3])
    res = pvm(base, unit_locations={"base": [1, 2, 4]}, return_dict=True)
    assert isinstance(res, pv.IntervenableModelOutput)
    torch.testing.assert_close(res.collected_activations[0], hidden(gpt2, base, 0)[:, [1, 2, 4]])
    (_, whole), _ = pvm(base)
    torch.testing.assert_close(whole[0], hidden(gpt2, base, 0))


def test_different_source_and_base_positions_and_lengths(gpt2):
    base, source = ids(1, 6, 2), ids(1, 9, 3)
    src_h = hidden(gpt2, source, 1)

    def fn(x):
        x = x.clone()
        x[:, [4, 1]] = src_h[:, [7, 2]]
        return x

    expect = patched_logits(gpt2, gpt2.transformer.h[1], fn, base)
    pvm = pv.IntervenableModel({"layer": 1, "component": "block_output"}, gpt2)
    _, out = pvm(base, [source], {"sources->base": ([[[7, 2]]], [[[4, 1]]])})
    torch.testing.assert_close(out.logits, expect)
    _, out = pvm(base, [source], {"sources->base": (8, 5)})
    expect = patched_logits(gpt2, gpt2.transformer.h[1], lambda x: _put(x, 5, src_h[:, 8]), base)
    torch.testing.assert_close(out.logits, expect)


def _put(x, pos, value):
    x = x.clone()
    x[:, pos] = value
    return x


def test_batch_location_broadcast_and_per_example(gpt2, llama):
    for model in (gpt2, llama):
        base, source = ids(3, 6, 4), ids(3, 6, 5)
        src_h = hidden(model, source, 0)
        layer0 = model.transformer.h[0] if model is gpt2 else model.model.layers[0]
        pvm = pv.IntervenableModel({"layer": 0, "component": "block_output"}, model)
        _, out = pvm(base, [source], {"sources->base": ([[[1]]], [[[2]]])})  # batch-1 lists
        torch.testing.assert_close(
            out.logits, patched_logits(model, layer0, lambda x, h=src_h: _put(x, 2, h[:, 1]), base)
        )


def test_two_interventions_parallel_with_two_sources(gpt2):
    base, s1, s2 = ids(1, 6, 6), ids(1, 6, 7), ids(1, 6, 8)
    h1, h2 = hidden(gpt2, s1, 0), hidden(gpt2, s2, 1)
    pvm = pv.IntervenableModel(
        [{"layer": 0, "component": "block_output"}, {"layer": 1, "component": "block_output"}],
        gpt2,
    )
    _, out = pvm(base, [s1, s2], {"sources->base": ([[[1]], [[3]]], [[[1]], [[3]]])})
    h_a = gpt2.transformer.h[0].register_forward_hook(lambda m, a, o: _put(o, 1, h1[:, 1]))
    h_b = gpt2.transformer.h[1].register_forward_hook(lambda m, a, o: _put(o, 3, h2[:, 3]))
    try:
        expect = gpt2(**base).logits
    finally:
        h_a.remove()
        h_b.remove()
    torch.testing.assert_close(out.logits, expect)
    # skipping: a None source disables its intervention only
    _, skip = pvm(base, [None, s2], {"sources->base": ([None, [[3]]], [None, [[3]]])})
    one = pv.IntervenableModel({"layer": 1, "component": "block_output"}, gpt2)
    _, only = one(base, [s2], {"sources->base": 3})
    torch.testing.assert_close(skip.logits, only.logits)


def test_groups_share_one_source(gpt2):
    base, src = ids(1, 6, 9), ids(1, 6, 10)
    pvm = pv.IntervenableModel(
        [
            {"layer": 0, "component": "mlp_output", "group_key": 0},
            {"layer": 1, "component": "mlp_output", "group_key": 0},
        ],
        gpt2,
    )
    _, out = pvm(base, [src], {"sources->base": ([[[3]], [[4]]], [[[3]], [[4]]])})
    ref = pv.IntervenableModel(
        [{"layer": 0, "component": "mlp_output"}, {"layer": 1, "component": "mlp_output"}], gpt2
    )
    _, expect = ref(base, [src, src], {"sources->base": ([[[3]], [[4]]], [[[3]], [[4]]])})
    torch.testing.assert_close(out.logits, expect.logits)


def test_serial_mode_chains_sources(gpt2):
    base, s0, s1 = ids(1, 6, 11), ids(1, 6, 12), ids(1, 6, 13)
    cfg = pv.IntervenableConfig(
        [{"layer": 0, "component": "block_output"}, {"layer": 1, "component": "block_output"}],
        mode="serial",
    )
    pvm = pv.IntervenableModel(cfg, gpt2)
    _, out = pvm(base, [s0, s1], {"source_0->source_1": 3, "source_1->base": 4})
    # manual: s1 run with layer-0 pos 3 from s0, then its layer-1 pos 4 -> base pos 4
    h0 = hidden(gpt2, s0, 0)
    hk = gpt2.transformer.h[0].register_forward_hook(lambda m, a, o: _put(o, 3, h0[:, 3]))
    try:
        h1 = hidden(gpt2, s1, 1)
    finally:
        hk.remove()
    expect = patched_logits(gpt2, gpt2.transformer.h[1], lambda x: _put(x, 4, h1[:, 4]), base)
    torch.testing.assert_close(out.logits, expect)


def test_source_representations_and_constant_source(gpt2):
    base = ids(2, 5, 14)
    vec = torch.randn(24)
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "mlp_output", "intervention_type": pv.AdditionIntervention}, gpt2
    )
    _, out = pvm(base, unit_locations={"base": 2}, source_representations=vec)
    mlp = gpt2.transformer.h[1].mlp
    expect = patched_logits(gpt2, mlp, lambda x: _put(x, 2, x[:, 2] + vec), base)
    torch.testing.assert_close(out.logits, expect)
    _, none = pvm(base, unit_locations={"base": 2})  # no source at all: nothing happens
    torch.testing.assert_close(none.logits, gpt2(**base).logits)
    zero = pv.IntervenableModel(
        {"layer": 1, "component": "mlp_output", "source_representation": torch.zeros(24)}, gpt2
    )
    _, out = zero(base, unit_locations={"base": 3})
    torch.testing.assert_close(
        out.logits, patched_logits(gpt2, mlp, lambda x: _put(x, 3, 0.0), base)
    )


def test_subspaces_in_forward(gpt2):
    base, src = ids(2, 5, 15), ids(2, 5, 16)
    src_h = hidden(gpt2, src, 1)
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "subspace_partition": [[0, 6], [6, 24]]}, gpt2
    )
    _, out = pvm(base, [src], {"sources->base": 2}, subspaces=[[[0], [1]]])

    def fn(x):
        x = x.clone()
        x[0, 2, :6] = src_h[0, 2, :6]
        x[1, 2, 6:] = src_h[1, 2, 6:]
        return x

    torch.testing.assert_close(out.logits, patched_logits(gpt2, gpt2.transformer.h[1], fn, base))


def test_lambda_and_module_path_components(gpt2):
    base = ids(1, 5, 17)
    pvm = pv.IntervenableModel(
        {"component": "transformer.h[0].mlp.output", "intervention": lambda b, s: b * 0}, gpt2
    )
    _, out = pvm(base, unit_locations={"base": 1})
    mlp = gpt2.transformer.h[0].mlp
    torch.testing.assert_close(
        out.logits, patched_logits(gpt2, mlp, lambda x: _put(x, 1, 0.0), base)
    )
    assert pvm.sorted_keys[0].startswith("comp_transformer_h[0]_mlp_output")


def test_source_run_stops_after_deepest_site(gpt2):
    calls = []
    handle = gpt2.transformer.h[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        pvm = pv.IntervenableModel(
            {"layer": 0, "component": "block_output"}, gpt2, batch_sources=False
        )
        pvm(ids(1, 5, 18), [ids(1, 6, 19)], {"sources->base": 1})
    finally:
        handle.remove()
    assert len(calls) == 1, "only the base run may reach layer 2"


def test_one_pass_and_two_pass_agree_with_grad(gpt2):
    """With autograd on, both source strategies (one batched pass, source then base) give the
    logits and the gradients of the intervention's parameters that plain hooks give for the
    same mask interpolation, done by hand with the mask and temperature as leaf tensors."""
    base, src = ids(2, 6, 20), ids(2, 6, 21)
    mask0 = torch.randn(24, generator=torch.Generator().manual_seed(0)) * 0.01
    mask, temp = mask0.clone().requires_grad_(), torch.tensor(0.01, requires_grad=True)
    with torch.no_grad():
        s = hidden(gpt2, src, 1)
    at3 = (torch.arange(6) == 3)[None, :, None]

    def interpolate(b):
        m = torch.sigmoid(mask / temp)
        return torch.where(at3, (1 - m) * b + m * s, b)

    handle = hooked(gpt2.transformer.h[1], "output", interpolate)
    try:
        want = gpt2(**base).logits
    finally:
        handle.remove()
    want[:, -1].logsumexp(-1).sum().backward()
    assert mask.grad.abs().max() > 1e-3 and temp.grad.abs() > 1e-3  # a gradient to compare
    for mode in (True, False):
        pvm = pv.IntervenableModel(
            {"layer": 1, "component": "block_output",
             "intervention_type": pv.SigmoidMaskIntervention},
            gpt2,
            batch_sources=mode,
        )  # fmt: skip
        inter = pvm.interventions[0]
        with torch.no_grad():
            inter.mask.copy_(mask0)
        _, out = pvm(base, [src], {"sources->base": 3}, output_original_output=True)
        torch.testing.assert_close(out.logits, want.detach(), rtol=1e-5, atol=1e-5)
        out.logits[:, -1].logsumexp(-1).sum().backward()
        torch.testing.assert_close(inter.mask.grad, mask.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(inter.temperature.grad, temp.grad, rtol=1e-4, atol=1e-5)


def test_intervention_key_aliases(gpt2):
    pvm = pv.IntervenableModel({"layer": 1, "component": "block_output"}, gpt2)
    key = "layer_1_comp_block_output_unit_pos_nunit_1#0"
    iv = pvm.interventions[key]
    assert pvm.interventions["layer.1.comp.block_output.unit.pos.nunit.1#0"] is iv
    assert pvm.interventions["layer.1.block_output"][0] is iv
    assert pvm.sorted_keys == [key]
    assert "VanillaIntervention" in str(pvm)


def test_config_forms_and_json(gpt2):
    a = pv.RepresentationConfig(1, "mlp_output", "pos", 2)
    assert (a.layer, a.component, a.unit, a.max_number_of_units) == (1, "mlp_output", "pos", 2)
    cfg = pv.IntervenableConfig([a, {"layer": 2, "component": "block_output"}], pv.ZeroIntervention)
    back = pv.IntervenableConfig.from_dict(cfg.to_dict())
    assert back.representations == cfg.representations
    assert back.intervention_types is pv.ZeroIntervention
    assert "PLACEHOLDER" in str(pv.IntervenableConfig({"source_representation": torch.ones(3)}))
    pvm = pv.IntervenableModel({"intervention": pv.ZeroIntervention}, gpt2)  # class accepted
    _, out = pvm(ids(1, 4, 22), unit_locations={"base": 0})
    assert out.logits.shape == (1, 4, 50)


def test_a_call_where_no_intervention_has_a_source_warns_at_the_callers_line(gpt2):
    """The seeds' Tutorial 6 form: an AdditionIntervention given no source runs nothing; say
    so (naming this file) instead of silently returning the plain model's output."""
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention},
        gpt2,
    )
    base = ids(1, 5, 3)
    with pytest.warns(UserWarning, match="AdditionIntervention needs a source") as rec:
        _, out = pvm(base)
    assert rec[0].filename == __file__
    assert torch.equal(out.logits, gpt2(**base).logits)
    with pytest.warns(UserWarning, match="no intervention runs") as rec:
        pvm.generate(base, max_new_tokens=2, do_sample=False)
    assert rec[0].filename == __file__
