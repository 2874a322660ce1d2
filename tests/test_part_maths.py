"""Fused-part maths (pyvene.gather.part_view / part_columns) and the sweeps' flat scatter
(scatter_flat), checked against hand-written indexing."""

from __future__ import annotations

import pytest
import torch

import pyvene as pv
from pyvene.families.base import Interleaved
from pyvene.gather import part_columns, part_view, scatter_flat
from pyvene.models.constants import split_part


def test_slice_part_is_a_view_of_the_columns():
    x = torch.randn(2, 3, 12)
    got = part_view(x, (4, 8))
    assert torch.equal(got, x[..., 4:8])
    assert got.data_ptr() == x[..., 4:].data_ptr()  # a view, no copy
    assert torch.equal(part_columns((4, 8), 12), torch.tensor([4, 5, 6, 7]))


def test_interleaved_part_picks_every_groups_slot():
    """(groups=2, parts=3, width=2): part 1 of group g sits at columns g*6 + 2, g*6 + 3."""
    x = torch.arange(2 * 12, dtype=torch.float32).view(2, 12)
    part = Interleaved(groups=2, parts=3, index=1)
    got = part_view(x, part)
    assert got.shape == (2, 2, 2)
    assert torch.equal(got[0], torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
    cols = part_columns(part, 12)
    assert torch.equal(cols, torch.tensor([2, 3, 8, 9]))
    assert torch.equal(x[:, cols], got.flatten(-2))
    assert torch.equal(split_part(x, part), got.flatten(-2))  # the original-API split


def test_whole_width_has_no_columns_and_bad_widths_are_refused():
    assert part_columns(None, 5) is None
    x = torch.zeros(1, 10)
    assert part_view(x, None) is x
    with pytest.raises(pv.DimensionMismatchError, match="at least 12, got 10"):
        part_view(x, (4, 12))
    with pytest.raises(pv.DimensionMismatchError, match="10 does not split into 2 groups x 3"):
        part_view(x, Interleaved(2, 3, 0))


def test_scatter_flat_writes_rows_or_single_elements_on_a_copy():
    x = torch.randn(2, 3, 4)
    rows = scatter_flat(x, torch.tensor([1, 4]), torch.ones(2, 4), rows=True)
    want = x.clone()
    want[0, 1] = 1.0
    want[1, 1] = 1.0  # flat row 4 = batch 1, position 1
    assert torch.equal(rows, want)
    elems = scatter_flat(x, torch.tensor([0, 23]), torch.tensor([7.0, 8.0]), rows=False)
    want = x.clone()
    want[0, 0, 0], want[1, 2, 3] = 7.0, 8.0
    assert torch.equal(elems, want)
    assert not torch.equal(x, want)  # the input is untouched
