"""Math of the parameter-free interventions against closed forms."""

from __future__ import annotations

import pytest
import torch

import pyvene as pv


def base_source():
    return torch.arange(36.0).view(2, 3, 6), torch.arange(36.0, 72.0).view(2, 3, 6)


def test_vanilla_interchange_dim_swaps_first_k_features():
    b, s = base_source()
    out = pv.VanillaIntervention(embed_dim=2)(b, s)
    expect = b.clone()
    expect[..., :2] = s[..., :2]
    torch.testing.assert_close(out, expect)
    assert torch.equal(b, torch.arange(36.0).view(2, 3, 6)), "base must not be modified in place"


def test_vanilla_per_example_subspaces_are_honored_per_example():
    b, s = base_source()
    out = pv.VanillaIntervention(embed_dim=6)(b, s, subspaces=[[0, 1], [4]])
    expect = b.clone()
    expect[0, :, [0, 1]] = s[0, :, [0, 1]]
    expect[1, :, [4]] = s[1, :, [4]]
    torch.testing.assert_close(out, expect)


def test_vanilla_subspace_partition_indices():
    b, s = base_source()
    iv = pv.VanillaIntervention(embed_dim=6, subspace_partition=[[0, 2], [2, 4], [4, 6]])
    out = iv(b, s, subspaces=[[1, 0]])
    expect = b.clone()
    expect[..., :4] = s[..., :4]
    torch.testing.assert_close(out, expect)


def test_source_vector_broadcasts_and_bad_width_raises():
    b, _ = base_source()
    vec = torch.arange(6.0)
    torch.testing.assert_close(pv.AdditionIntervention(embed_dim=6)(b, vec), b + vec)
    torch.testing.assert_close(pv.SubtractionIntervention(embed_dim=6)(b, vec), b - vec)
    with pytest.raises(pv.DimensionMismatchError, match="cannot be broadcasted"):
        pv.VanillaIntervention(embed_dim=6)(b, torch.ones(5))


def test_zero_and_constant_source():
    b, _ = base_source()
    torch.testing.assert_close(pv.ZeroIntervention(embed_dim=6)(b), torch.zeros_like(b))
    zero_first = pv.ZeroIntervention(embed_dim=6)(b, subspaces=[[0, 5]])
    assert (zero_first[..., [0, 5]] == 0).all() and torch.equal(zero_first[..., 1:5], b[..., 1:5])
    const = pv.VanillaIntervention(embed_dim=6, source_representation=torch.full((6,), 7.0))
    assert const.is_source_constant
    torch.testing.assert_close(const(b, None), torch.full_like(b, 7.0))


def test_collect_returns_selected_dims_without_change():
    b, _ = base_source()
    c = pv.CollectIntervention(embed_dim=6, subspace_partition=[[0, 2], [2, 4], [4, 6]])
    torch.testing.assert_close(c(b, None, subspaces=[[0, 2]]), b[..., [0, 1, 4, 5]])
    torch.testing.assert_close(c(b, None), b)


def test_noise_is_seeded_gaussian_of_any_shape():
    b = torch.zeros(3, 5, 8)
    n1 = pv.NoiseIntervention(noise_level=2.0, seed=7)(b)
    n2 = pv.NoiseIntervention(noise_level=2.0, seed=7)(b)
    gen = torch.Generator().manual_seed(7)
    expect = 2.0 * torch.randn(b.shape, generator=gen)
    torch.testing.assert_close(n1, expect)
    torch.testing.assert_close(n1, n2)
    other = pv.NoiseIntervention(noise_level=2.0, seed=8)(b)
    assert not torch.allclose(n1, other)
    assert pv.NoiseIntervention()(torch.zeros(2, 9)).shape == (2, 9)


def test_swap_primitive_modes_and_bad_mode():
    b, s = base_source()
    torch.testing.assert_close(
        pv._do_intervention_by_swap(b, s, "add", 3),
        torch.cat([b[..., :3] + s[..., :3], b[..., 3:]], -1),
    )
    with pytest.raises(pv.ConfigError, match="interchange"):
        pv._do_intervention_by_swap(b, s, "swap")


def test_seed_index_zero_returns_the_intervention():
    iv = pv.VanillaIntervention()
    assert iv[0] is iv
