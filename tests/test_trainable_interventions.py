"""Trainable interventions (rotation family, masks, autoencoders, LoRA): each one's math
against a closed form, orthogonality under training and low precision, gradient routing, and
use inside an IntervenableModel with batch > 1, with and without unit_locations."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import ids, make_gpt2, make_llama

import pyvene as pv
from pyvene.errors import ConfigError, DimensionMismatchError

D = 8


def orth_error(m: torch.Tensor) -> float:
    eye = torch.eye(m.shape[1], dtype=m.dtype)
    return float((m.T @ m - eye).abs().max())


def pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


# ------------------------------------------------------------------------------ closed forms
def test_rotated_space_closed_form_with_subspaces_and_interchange_dim():
    torch.manual_seed(0)
    iv = pv.RotatedSpaceIntervention(embed_dim=D)
    r = iv.rotate_layer.weight.detach()
    assert orth_error(r) < 1e-5
    b, s = pair((3, D))
    # default: every rotated dim from the source = a plain swap
    torch.testing.assert_close(iv(b, s), s, atol=1e-5, rtol=0)
    # per-example subspaces: out = (b R with chosen dims from s R) R^T
    subspaces = [[0, 1], [2, 5, 7], [3]]
    out = iv(b, s, subspaces)
    for row, dims in enumerate(subspaces):
        rb, rs = b[row] @ r, s[row] @ r
        rb[dims] = rs[dims]
        torch.testing.assert_close(out[row], rb @ r.T, atol=1e-5, rtol=0)
    # interchange_dim k: first k rotated dims
    iv.set_interchange_dim(3)
    rb, rs = b @ r, s @ r
    rb[:, :3] = rs[:, :3]
    torch.testing.assert_close(iv(b, s), rb @ r.T, atol=1e-5, rtol=0)


def test_rotated_space_subspace_partition_and_3d_inputs():
    torch.manual_seed(1)
    iv = pv.RotatedSpaceIntervention(embed_dim=D, subspace_partition=[[0, 3], [3, 8]])
    r = iv.rotate_layer.weight.detach()
    b, s = pair((2, 5, D), seed=1)  # (B, S, D): acts per position
    out = iv(b, s, subspaces=[1])
    rb, rs = b @ r, s @ r
    rb[..., 3:] = rs[..., 3:]
    torch.testing.assert_close(out, rb @ r.T, atol=1e-5, rtol=0)


def test_rotated_space_low_rank_dimension_warns_once_and_is_ignored():
    pv.RotatedSpaceIntervention._warned_low_rank = False
    with pytest.warns(UserWarning, match="LowRankRotatedSpaceIntervention"):
        iv = pv.RotatedSpaceIntervention(embed_dim=D, low_rank_dimension=2)
    assert iv.rotate_layer.weight.shape == (D, D)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pv.RotatedSpaceIntervention(embed_dim=D, low_rank_dimension=2)


def test_low_rank_touches_only_its_subspace():
    torch.manual_seed(2)
    iv = pv.LowRankRotatedSpaceIntervention(embed_dim=D, low_rank_dimension=3)
    w = iv.rotate_layer.weight.detach()
    assert w.shape == (D, 3) and orth_error(w) < 1e-5
    b, s = pair((4, 2, D), seed=2)
    out = iv(b, s)
    torch.testing.assert_close(out, b + (s - b) @ w @ w.T, atol=1e-5, rtol=0)
    delta = out - b
    torch.testing.assert_close(delta - delta @ w @ w.T, torch.zeros_like(b), atol=1e-5, rtol=0)
    # subspaces pick latent columns
    out1 = iv(b, s, subspaces=[[1]] * 4)
    col = w[:, 1:2]
    torch.testing.assert_close(out1, b + (s - b) @ col @ col.T, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="low_rank_dimension"):
        pv.LowRankRotatedSpaceIntervention(embed_dim=D)


def test_boundless_centred_mask_hard_at_low_temperature_and_batches():
    torch.manual_seed(3)
    iv = pv.BoundlessRotatedSpaceIntervention(embed_dim=D, centred_mask=True)
    r = iv.rotate_layer.weight.detach()
    iv.set_temperature(1e-4)
    iv.set_intervention_boundaries(0.5)
    assert iv.get_temperature().item() == pytest.approx(1e-4)
    torch.testing.assert_close(iv.mask(), torch.tensor([1.0] * 4 + [0.0] * 4))
    b, s = pair((3, 4, D), seed=3)  # batch 3, 4 units: mask broadcasts over both
    rb, rs = b @ r, s @ r
    rb[..., :4] = rs[..., :4]
    torch.testing.assert_close(iv(b, s), rb @ r.T, atol=1e-5, rtol=0)
    # soft at the initial temperature, and the boundary learns
    iv.set_temperature(50.0)
    soft = iv.mask().detach()
    assert 0.2 < float(soft.min()) and float(soft.max()) < 0.3
    assert iv.get_boundary_parameters() is iv.intervention_boundaries


def test_sigmoid_mask_rotated_closed_form():
    torch.manual_seed(4)
    iv = pv.SigmoidMaskRotatedSpaceIntervention(embed_dim=D)
    r = iv.rotate_layer.weight.detach()
    m = torch.sigmoid(torch.tensor(100.0 / 50.0))
    b, s = pair((2, D), seed=4)
    expected = ((1 - m) * (b @ r) + m * (s @ r)) @ r.T
    torch.testing.assert_close(iv(b, s), expected, atol=1e-5, rtol=0)
    assert iv.get_boundary_parameters() is iv.masks


def test_pca_fit_and_interchange():
    g = torch.Generator().manual_seed(5)
    acts = torch.randn(200, D, generator=g) @ torch.randn(D, D, generator=g)
    iv = pv.PCARotatedSpaceIntervention.fit(acts, n_components=3)
    c = iv.pca_components
    torch.testing.assert_close(c @ c.T, torch.eye(3), atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in iv.parameters()) and not iv.trainable
    b, s = pair((2, D), seed=5)
    torch.testing.assert_close(iv(b, s), b + (s - b) @ c.T @ c, atol=1e-5, rtol=0)
    first = c[:1]
    torch.testing.assert_close(iv(b, s, [0]), b + (s - b) @ first.T @ first, atol=1e-5, rtol=0)
    # full rank, standardized: the original's (z' C) std + mean form
    iv = pv.PCARotatedSpaceIntervention.fit(acts, standardize=True)
    iv.set_interchange_dim(2)
    mu, sd, c = iv.pca_mean, iv.pca_std, iv.pca_components
    zb, zs = ((b - mu) / sd) @ c.T, ((s - mu) / sd) @ c.T
    zb[:, :2] = zs[:, :2]
    torch.testing.assert_close(iv(b, s), (zb @ c) * sd + mu, atol=1e-4, rtol=0)


def test_sigmoid_mask_localist():
    iv = pv.SigmoidMaskIntervention(embed_dim=D)
    b, s = pair((2, 3, D), seed=6)
    torch.testing.assert_close(iv(b, s), 0.5 * b + 0.5 * s)
    with torch.no_grad():
        iv.mask.copy_(torch.tensor([-1.0, 1.0] * 4))
    iv.set_temperature(1e-3)
    hard = torch.tensor([0.0, 1.0] * 4)
    torch.testing.assert_close(iv(b, s), (1 - hard) * b + hard * s)


def test_autoencoder_defaults_and_latent_ids():
    torch.manual_seed(7)
    iv = pv.AutoencoderIntervention(embed_dim=D, latent_dim=12)
    ae = iv.autoencoder
    b, s = pair((3, D), seed=7)
    torch.testing.assert_close(iv(b, s), ae(s))  # default: every latent from the source
    iv.set_interchange_dim([1, 4])
    zb, zs = ae.encode(b), ae.encode(s)
    zb[:, [1, 4]] = zs[:, [1, 4]]
    torch.testing.assert_close(iv(b, s), ae.decode(zb))
    zb = ae.encode(b)
    zb[:, 2] = zs[:, 2]
    torch.testing.assert_close(iv(b, s, subspaces=[2]), ae.decode(zb))
    out = ae(b, return_latent=True)
    assert set(out) == {"latent", "output"} and out["latent"].shape == (3, 12)


def test_jumprelu_threshold():
    iv = pv.JumpReLUAutoencoderIntervention(embed_dim=4, low_rank_dimension=4)
    assert iv.keep_last_dim
    with torch.no_grad():
        iv.W_enc.copy_(torch.eye(4))
        iv.W_dec.copy_(torch.eye(4))
        iv.threshold.fill_(0.5)
    x = torch.tensor([[0.4, 0.6, -1.0, 2.0]])
    torch.testing.assert_close(iv.encode(x), torch.tensor([[0.0, 0.6, 0.0, 2.0]]))
    s = torch.tensor([[1.0, 0.1, 3.0, 0.7]])
    # latents 0 and 2 from the source; output = reconstruction of the intervened latents
    out = iv(x, s, subspaces=[[0, 2]])
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.6, 3.0, 2.0]]))
    iv.set_interchange_dim(1)  # first latent only
    torch.testing.assert_close(iv(x, s), torch.tensor([[1.0, 0.6, 0.0, 2.0]]))


def test_parameter_counts_match_the_original():
    d, r, latent = 24, 2, 5
    made = {
        pv.RotatedSpaceIntervention(embed_dim=d): d * d,
        pv.LowRankRotatedSpaceIntervention(embed_dim=d, low_rank_dimension=r): d * r,
        pv.BoundlessRotatedSpaceIntervention(embed_dim=d): d * d + 2,
        pv.SigmoidMaskRotatedSpaceIntervention(embed_dim=d): d * d + d + 1,
        pv.SigmoidMaskIntervention(embed_dim=d): d + 1,
        pv.AutoencoderIntervention(embed_dim=d, latent_dim=latent): 2 * d * latent + d + latent,
        pv.JumpReLUAutoencoderIntervention(embed_dim=d, low_rank_dimension=r): 2 * d * r
        + 2 * r
        + d,
    }
    for iv, expected in made.items():
        got = sum(p.numel() for p in iv.parameters() if p.requires_grad)
        assert got == expected, type(iv).__name__


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
