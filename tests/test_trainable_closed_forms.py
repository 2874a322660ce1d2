"""Trainable interventions (rotation family, masks, autoencoders): each one's math against a
closed form, and parameter counts against the original's."""

from __future__ import annotations

import warnings

import pytest
import torch
from trainable_helpers import D, orth_error, pair

import pyvene as pv
from pyvene.errors import ConfigError


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
