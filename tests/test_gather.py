"""pyvene.gather in closed form: gather / scatter of every unit ("pos", heads "h", "h.pos",
whole tensor) and every fused-part kind (none, a ``[start, end)`` slice, an interleaved part),
on ``arange`` tensors whose value is their own flat offset, so each expected element is plain
index arithmetic ``(b * S + s) * W + column``, written out here.

Unit "t" (recurrent cells) hooks 2-D ``(B, W)`` tensors, which gather treats as ``S = 1``;
the timestep itself is chosen in pyvene.recurrent (tests/test_gru_timesteps.py).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from pyvene.errors import DimensionMismatchError, LocationError
from pyvene.families import HookSite
from pyvene.families.base import Interleaved
from pyvene.gather import Units, gather, scatter

B, S = 2, 5
H, DH = 2, 3  # heads of head components


def site(part=None, heads=None) -> HookSite:
    return HookSite(nn.Identity(), "m", "output", "c", 0, None, part=part, heads=heads)


def units(index, pos=None) -> Units:
    index = torch.tensor(index)
    pos = None if pos is None else torch.tensor(pos)
    bounds = (int(index.min()), int(index.max()))
    return Units(index, pos, bounds, None if pos is None else (int(pos.min()), int(pos.max())))


# kind -> (raw width W, site, column(f) of unit feature f) for per-position components
FLAT = {
    "whole": (6, site(), lambda f: f),
    "slice": (8, site(part=(2, 5)), lambda f: 2 + f),
    # (groups 2, parts 3, width 2), part 1: feature f = g * 2 + c sits at (g * 3 + 1) * 2 + c
    "interleaved": (12, site(part=Interleaved(2, 3, 1)), lambda f: (f // 2 * 3 + 1) * 2 + f % 2),
}
FLAT_WIDTH = {"whole": 6, "slice": 3, "interleaved": 4}
# kind -> (raw width W, site, column(h, d)) for head components (H heads of DH)
HEADS = {
    "whole": (6, site(heads=H), lambda h, d: h * DH + d),
    "slice": (18, site(part=(6, 12), heads=H), lambda h, d: 6 + h * DH + d),
    # GPT-NeoX's fused QKV (heads, 3, DH), part 2 (V)
    "interleaved": (
        18,
        site(part=Interleaved(H, 3, 2), heads=H),
        lambda h, d: (h * 3 + 2) * DH + d,
    ),
}


def raw(width: int, seq: int = S) -> torch.Tensor:
    return torch.arange(B * seq * width, dtype=torch.float32).view(B, seq, width)


def offset(b: int, s: int, column: int, width: int, seq: int = S) -> int:
    return (b * seq + s) * width + column


def expected(shape, at) -> torch.Tensor:
    """A tensor of ``shape`` whose element at index ``i`` is the offset ``at(*i)``."""
    out = torch.empty(shape)
    for i in itertools.product(*map(range, shape)):
        out[i] = at(*i)
    return out


def scattered(x: torch.Tensor, value: torch.Tensor, at) -> torch.Tensor:
    """``x`` with ``value[i]`` written at flat offset ``at(*i)`` (element by element)."""
    out = x.clone().view(-1)
    for i in itertools.product(*map(range, value.shape)):
        out[at(*i)] = value[i]
    return out.view(x.shape)


def values(shape) -> torch.Tensor:
    return -1.0 - torch.arange(torch.Size(shape).numel(), dtype=torch.float32).view(shape)


POS = [[0, 3], [4, 1]]
HEAD_SEL = [[1], [0]]
POS_SEL = [[2, 0], [4, 4]]


@pytest.mark.parametrize("kind", sorted(FLAT))
def test_pos_gather_and_scatter(kind):
    width, s, col = FLAT[kind]
    x, idx, d = raw(width), POS, FLAT_WIDTH[kind]
    at = lambda b, u, f: offset(b, idx[b][u], col(f), width)  # noqa: E731
    got = gather(x, s, units(idx))
    torch.testing.assert_close(got, expected((B, 2, d), at), rtol=0, atol=0)
    v = values((B, 2, d))
    out = scatter(x, s, units(idx), v)
    torch.testing.assert_close(out, scattered(x, v, at), rtol=0, atol=0)
    torch.testing.assert_close(x, raw(width), rtol=0, atol=0)  # out of place
    torch.testing.assert_close(gather(out, s, units(idx)), v, rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(FLAT))
def test_whole_tensor_without_locations(kind):
    width, s, col = FLAT[kind]
    d = FLAT_WIDTH[kind]
    at = lambda b, t, f: offset(b, t, col(f), width)  # noqa: E731
    x = raw(width)
    torch.testing.assert_close(gather(x, s, None), expected((B, S, d), at), rtol=0, atol=0)
    v = values((B, S, d))
    torch.testing.assert_close(scatter(x, s, None, v), scattered(x, v, at), rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_h_gather_and_scatter(kind):
    width, s, col = HEADS[kind]
    x, idx = raw(width), HEAD_SEL
    at = lambda b, u, t, d: offset(b, t, col(idx[b][u], d), width)  # noqa: E731
    got = gather(x, s, units(idx))
    torch.testing.assert_close(got, expected((B, 1, S, DH), at), rtol=0, atol=0)
    v = values((B, 1, S, DH))
    torch.testing.assert_close(scatter(x, s, units(idx), v), scattered(x, v, at), rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_h_pos_gather_and_scatter(kind):
    width, s, col = HEADS[kind]
    x, heads, pos = raw(width), HEAD_SEL, POS_SEL
    at = lambda b, h, p, d: offset(b, pos[b][p], col(heads[b][h], d), width)  # noqa: E731
    got = gather(x, s, units(heads, pos))
    torch.testing.assert_close(got, expected((B, 1, 2, DH), at), rtol=0, atol=0)
    v = values((B, 1, 2, DH))
    out = scatter(x, s, units(heads, pos), v)
    torch.testing.assert_close(out, scattered(x, v, at), rtol=0, atol=0)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_heads_without_locations_are_batch_heads_seq(kind):
    width, s, col = HEADS[kind]
    at = lambda b, h, t, d: offset(b, t, col(h, d), width)  # noqa: E731
    x = raw(width)
    torch.testing.assert_close(gather(x, s, None), expected((B, H, S, DH), at), rtol=0, atol=0)
    v = values((B, H, S, DH))
    torch.testing.assert_close(scatter(x, s, None, v), scattered(x, v, at), rtol=0, atol=0)


def test_two_dim_tensor_is_one_position_the_unit_t_case():
    x = torch.arange(B * 4, dtype=torch.float32).view(B, 4)
    got = gather(x, site(), units([[0]]))
    torch.testing.assert_close(got, expected((B, 1, 4), lambda b, u, f: b * 4 + f))
    v = values((B, 1, 4))
    out = scatter(x, site(), units([[0]]), v)
    assert out.shape == (B, 4)
    torch.testing.assert_close(out, v.view(B, 4), rtol=0, atol=0)


def test_one_row_of_locations_applies_to_every_example_and_negatives_wrap():
    width, s, col = FLAT["whole"]
    x = raw(width)
    at = lambda b, u, f: offset(b, [S - 1, 1][u], f, width)  # noqa: E731
    got = gather(x, s, units([[-1, 1]]))
    torch.testing.assert_close(got, expected((B, 2, 6), at), rtol=0, atol=0)


def test_out_of_range_and_wrong_batch_locations_are_refused():
    x = raw(6)
    with pytest.raises(LocationError, match="index 5 is out of range for size 5"):
        gather(x, site(), units([[0, 5]]))
    with pytest.raises(LocationError, match="index -6 is out of range for size 5"):
        scatter(x, site(), units([[-6]]), values((B, 1, 6)))
    with pytest.raises(LocationError, match="head index 2 is out of range for size 2"):
        gather(x, site(heads=H), units([[2]]))
    with pytest.raises(LocationError, match="locations for 3 examples.*batch has 2"):
        gather(x, site(), units([[0], [1], [2]]))
    with pytest.raises(LocationError, match="'h.pos' needs a head component"):
        gather(x, site(), units([[0]], [[1]]))


def test_bad_widths_and_shapes_are_refused():
    with pytest.raises(DimensionMismatchError, match="expected a last dim of at least 5"):
        gather(raw(4), site(part=(2, 5)), None)
    with pytest.raises(DimensionMismatchError, match="width 5 does not split into 2 heads"):
        gather(raw(5), site(heads=2), None)
    with pytest.raises(DimensionMismatchError, match="does not split into 2 groups x 3 parts"):
        gather(raw(10), site(part=Interleaved(2, 3, 0)), None)
    with pytest.raises(DimensionMismatchError, match="3 heads, but the fused output"):
        gather(raw(18), site(part=Interleaved(2, 3, 0), heads=3), None)
    with pytest.raises(DimensionMismatchError, match=r"shape \(2, 1, 5\), expected \(2, 1, 6\)"):
        scatter(raw(6), site(), units([[0]]), values((B, 1, 5)))
