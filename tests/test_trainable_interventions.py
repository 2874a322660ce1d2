"""Trainable interventions in training and in the engine: orthogonality under training and low
precision, gradient routing, use inside an IntervenableModel with batch > 1 (with and without
unit_locations), and LoRA (closed forms: tests/test_trainable_closed_forms.py)."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_gpt2, make_llama
from trainable_helpers import D, orth_error, pair

import pyvene as pv
from pyvene.errors import ConfigError, DimensionMismatchError


# ------------------------------------------------------------------ training & precision
def test_rotation_stays_orthogonal_under_adam():
    torch.manual_seed(8)
    for iv in (
        pv.RotatedSpaceIntervention(embed_dim=16),
        pv.LowRankRotatedSpaceIntervention(embed_dim=16, low_rank_dimension=4),
    ):
        iv.set_interchange_dim(5)
        opt = torch.optim.Adam(iv.parameters(), lr=0.05)
        b, s = pair((8, 16), seed=8)
        target = torch.randn(8, 16)
        before = iv.rotate_layer.weight.detach().clone()
        for _ in range(10):
            loss = ((iv(b, s) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        w = iv.rotate_layer.weight.detach()
        assert not torch.allclose(w, before)
        assert orth_error(w) < 1e-5


def test_bf16_model_keeps_rotation_float32_and_orthogonal():
    model = make_llama(seed=1).to(torch.bfloat16)
    cfg = pv.IntervenableConfig(
        [{"layer": 1, "component": "block_output", "low_rank_dimension": 4}],
        intervention_types=pv.LowRankRotatedSpaceIntervention,
    )
    pvm = pv.IntervenableModel(cfg, model)
    pvm.set_device("cpu")
    iv = pvm.interventions[0]
    iv.to(torch.bfloat16)  # a blanket cast must not reach the rotation
    w = iv.rotate_layer.weight
    assert w.dtype == torch.float32 and orth_error(w.detach()) < 1e-5
    opt = torch.optim.Adam(pvm.get_trainable_parameters(), lr=0.05)
    base, src = ids(2, 6, 1), ids(2, 6, 2)
    for _ in range(3):
        out = pvm(base, [src], {"sources->base": 3})[1].logits
        assert out.dtype == torch.bfloat16
        loss = out.float().logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert orth_error(iv.rotate_layer.weight.detach()) < 1e-5
    for rot in (pv.RotatedSpaceIntervention, pv.BoundlessRotatedSpaceIntervention):
        one = rot(embed_dim=D).to(torch.float16)
        assert one.rotate_layer.weight.dtype == torch.float32
        b = torch.randn(2, D, dtype=torch.float16)
        assert one(b, b.flip(0)).dtype == torch.float16


def test_gradients_reach_only_intervention_parameters():
    model = make_gpt2(seed=2)
    cfg = pv.IntervenableConfig(
        [{"layer": 1, "component": "block_output"}], intervention_types=pv.RotatedSpaceIntervention
    )
    pvm = pv.IntervenableModel(cfg, model)
    pvm.interventions[0].set_interchange_dim(6)
    out = pvm(ids(2, 5, 3), [ids(2, 5, 4)], {"sources->base": ([[[1]] * 2], [[[2]] * 2])})[1]
    out.logits.sum().backward()
    assert all(p.grad is None for p in model.parameters())
    params = pvm.get_trainable_parameters()
    assert params and all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    assert pvm.count_parameters() == 24 * 24


# ------------------------------------------------------------------------- in the engine
ROTATIONS = [
    (pv.RotatedSpaceIntervention, {}),
    (pv.LowRankRotatedSpaceIntervention, {"low_rank_dimension": 3}),
    (pv.BoundlessRotatedSpaceIntervention, {}),
    (pv.SigmoidMaskRotatedSpaceIntervention, {}),
    (pv.AutoencoderIntervention, {"latent_dim": 6}),
]


@pytest.mark.parametrize("cls,extra", ROTATIONS, ids=[c.__name__ for c, _ in ROTATIONS])
@pytest.mark.parametrize("units", [None, 2])
def test_batched_with_and_without_unit_locations(gpt2, cls, extra, units):
    """batch 3: every row's intervened output equals the same call on that row alone."""
    rep = {"layer": 1, "component": "block_output", "max_number_of_units": units or 1}
    pvm = pv.IntervenableModel(
        pv.IntervenableConfig([{**rep, **extra}], intervention_types=cls), gpt2
    )
    base, src = ids(3, 6, 5), ids(3, 6, 6)
    locs = None
    if units:
        locs = {"sources->base": ([[[1, 4], [0, 2], [3, 5]]], [[[2, 3], [1, 4], [0, 5]]])}
    with torch.no_grad():
        out = pvm(base, [src], locs)[1].logits
        plain = gpt2(**base).logits
        assert not torch.allclose(out, plain)
        for row in range(3):
            one = {k: v[row : row + 1] for k, v in base.items()}
            one_src = {k: v[row : row + 1] for k, v in src.items()}
            one_locs = None
            if units:
                one_locs = {
                    "sources->base": ([[locs["sources->base"][0][0][row]]],
                                      [[locs["sources->base"][1][0][row]]])
                }  # fmt: skip
            single = pvm(one, [one_src], one_locs)[1].logits
            torch.testing.assert_close(out[row : row + 1], single, atol=1e-4, rtol=1e-4)


def test_rotation_without_locations_acts_per_position(gpt2):
    """No unit_locations: out_p = b_p + (s_p - b_p) W W^T at every position (hooked by hand)."""
    pvm = pv.IntervenableModel(
        pv.IntervenableConfig(
            [{"layer": 0, "component": "block_output", "low_rank_dimension": 2}],
            intervention_types=pv.LowRankRotatedSpaceIntervention,
        ),
        gpt2,
    )
    w = pvm.interventions[0].rotate_layer.weight.detach()
    base, src = ids(2, 5, 7), ids(2, 5, 8)
    with torch.no_grad():
        hs = gpt2(**src, output_hidden_states=True).hidden_states[1]

        def hook(module, args, output):
            b = output[0] if isinstance(output, tuple) else output
            new = b + (hs - b) @ w @ w.T
            return (new, *output[1:]) if isinstance(output, tuple) else new

        handle = gpt2.transformer.h[0].register_forward_hook(hook)
        try:
            expected = gpt2(**base).logits
        finally:
            handle.remove()
        got = pvm(base, [src])[1].logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_set_temperature_reaches_boundless_and_sigmoid_mask(gpt2):
    cfg = pv.IntervenableConfig(
        [{"layer": 0, "component": "block_output"}, {"layer": 1, "component": "block_output"}],
        intervention_types=[pv.BoundlessRotatedSpaceIntervention, pv.SigmoidMaskIntervention],
    )
    pvm = pv.IntervenableModel(cfg, gpt2)
    pvm.set_temperature(0.25)
    assert all(float(i.get_temperature().detach()) == 0.25 for i in pvm.interventions.values())
    assert pvm.count_parameters() == (24 * 24 + 2) + (24 + 1)


def test_width_mismatch_is_a_clear_error(gpt2):
    iv = pv.RotatedSpaceIntervention(embed_dim=D)
    with pytest.raises(DimensionMismatchError, match="max_number_of_units"):
        iv(torch.zeros(2, D + 1), torch.zeros(2, D + 1))
    with pytest.raises(ConfigError, match="embed_dim"):
        pv.RotatedSpaceIntervention()


# --------------------------------------------------------------------------------- LoRA
def test_lora_starts_as_identity_and_matches_closed_form(gpt2):
    cfg = pv.IntervenableConfig(
        [{"layer": 1, "component": "mlp_output", "low_rank_dimension": 3}],
        intervention_types=pv.LoRAIntervention,
    )
    pvm = pv.IntervenableModel(cfg, gpt2)
    lora = pvm.interventions[0]
    base = ids(2, 5, 9)
    with torch.no_grad():
        plain = gpt2(**base).logits
        torch.testing.assert_close(pvm(base)[1].logits, plain)  # B = 0: identity
        lora.lora_B.weight.normal_()
        a, bw = lora.lora_A.weight, lora.lora_B.weight

        def hook(module, args, output):  # mlp(x) + B A x with x the mlp's input
            return output + args[0] @ a.T @ bw.T

        handle = gpt2.transformer.h[1].mlp.register_forward_hook(hook)
        try:
            expected = gpt2(**base).logits
        finally:
            handle.remove()
        torch.testing.assert_close(pvm(base)[1].logits, expected, atol=1e-5, rtol=1e-5)
        # at chosen positions only: position 2 of each row
        one = pvm(base, unit_locations={"base": [[[2]] * 2]})[1].logits
        torch.testing.assert_close(one[:, :2], plain[:, :2])
        assert not torch.allclose(one[:, 2], plain[:, 2])


def test_lora_trains_only_its_adapter():
    model = make_gpt2(seed=3)
    cfg = pv.IntervenableConfig(
        [{"layer": 0, "component": "attention_output", "low_rank_dimension": 2}],
        intervention_types=pv.LoRAIntervention,
    )
    pvm = pv.IntervenableModel(cfg, model)
    params = pvm.get_trainable_parameters()
    assert pvm.count_parameters() == 2 * (24 * 2)
    opt = torch.optim.Adam(params, lr=0.05)
    base = ids(4, 6, 10)
    labels = base["input_ids"]
    losses = []
    for _ in range(15):
        loss = pvm(base, labels=labels)[1].loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(DimensionMismatchError, match="input_dim"):
        pv.LoRAIntervention(embed_dim=4, low_rank_dimension=2)(
            torch.zeros(1, 4), args=torch.zeros(1, 6)
        )
