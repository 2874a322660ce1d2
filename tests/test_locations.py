"""pyvene.locations: every accepted ``unit_locations`` / ``subspaces`` form normalizes to the
index tensors written out here, and every ambiguous or malformed form is refused with a
:class:`LocationError` that names the bad value."""

from __future__ import annotations

import pytest
import torch

import pyvene as pv
from pyvene.errors import LocationError
from pyvene.locations import GET_LOC, broadcast_subspaces, normalize

KEYS = ["a", "b"]


def norm(locs, units=("pos", "pos"), batch=2, keys=KEYS):
    return normalize(locs, list(keys), list(units), batch)


def index(u) -> list:
    return None if u is None else u.index.tolist()


def sides(result) -> dict:
    """key -> (source index, base index) as lists (heads for "h.pos")."""
    return {k: (index(s), index(b)) for k, (s, b) in result.items()}


def test_no_locations_mean_the_whole_tensor():
    assert sides(norm(None)) == {"a": (None, None), "b": (None, None)}
    assert sides(norm({})) == {"a": (None, None), "b": (None, None)}


@pytest.mark.parametrize(
    "locs, src, base",
    [
        ({"base": 3}, None, [[3]]),
        ({"sources->base": 3}, [[3]], [[3]]),
        ({"sources->base": (2, 4)}, [[2]], [[4]]),
        ({"sources->base": (None, 4)}, None, [[4]]),
        ({"sources->base": (2, None)}, [[2]], None),
        ({"sources->base": [1, 2]}, [[1]], [[2]]),  # two ints: a (source, base) pair
        ({"base": [1, 2, 3]}, None, [[1, 2, 3]]),
        ({"sources->base": [1, 2, 3]}, [[1, 2, 3]], [[1, 2, 3]]),
        ({"sources->base": torch.tensor([1, 2, 3])}, [[1, 2, 3]], [[1, 2, 3]]),
    ],
)
def test_shorthands_apply_to_every_intervention(locs, src, base):
    assert sides(norm(locs)) == {"a": (src, base), "b": (src, base)}


def test_full_form_per_intervention_and_per_example():
    got = norm({"sources->base": ([[[0, 1]], [[2], [3]]], [[[4, 0]], [[1], [-1]]])})
    assert sides(got) == {"a": ([[0, 1]], [[4, 0]]), "b": ([[2], [3]], [[1], [-1]])}
    src_a, base_b = got["a"][0], got["b"][1]
    assert src_a.index.dtype == torch.long and src_a.pos is None
    assert src_a.bounds == (0, 1) and base_b.bounds == (-1, 1)  # for checks without a sync


def test_h_pos_entries_hold_heads_and_positions():
    entry = [[[1], [0]], [[2, 3], [4, 0]]]  # heads per example, positions per example
    (s, b) = norm({"sources->base": ([entry], [entry])}, units=["h.pos"], keys=["a"])["a"]
    assert s.index.tolist() == [[1], [0]] and s.pos.tolist() == [[2, 3], [4, 0]]
    assert s.bounds == (0, 1) and s.pos_bounds == (0, 4)
    (s, b) = norm({"sources->base": (GET_LOC((3, 5)), GET_LOC((3, 5)))}, ["h.pos"], 1, ["a"])["a"]
    assert s.index.tolist() == [[3]] and s.pos.tolist() == [[5]]


def test_timesteps_use_the_position_forms_and_refuse_negatives():
    assert sides(norm({"base": 2}, units=["t"], keys=["a"])) == {"a": (None, [[2]])}
    with pytest.raises(LocationError, match="timestep -1 is negative"):
        norm({"base": -1}, units=["t"], keys=["a"])


@pytest.mark.parametrize(
    "locs, message",
    [
        ([[0]], "unit_locations must be a dict.*got list"),
        ({"source->base": 1}, "unknown unit_locations key 'source->base'.*'sources->base'"),
        ({"sources->base": ([[[0]]], [[[0]]], [[[0]]])}, r"needs a \(source_locations, base"),
        ({"sources->base": ([[[0]]], [[[0]], [[1]]])}, "source locations: got 1 entries for 2"),
        ({"base": [[[0]], [[0], [1], [2]]]}, "locations for 3 examples but the batch has 2"),
        ({"base": [[[0]], [[0, 1], [2]]]}, r"same \(non-zero\) number of units.*\[1, 2\]"),
        ({"base": [[[0]], [["x"]]]}, r"base locations of b: got \[\['x'\]\]"),
        (
            {"sources->base": ([[[0]], [[0]]], [[[0, 1]], [[0]]])},
            r"a: the source selects \(1,\) units and the base \(2,\)",
        ),
    ],
)
def test_malformed_locations_are_refused_naming_the_value(locs, message):
    with pytest.raises(LocationError, match=message):
        norm(locs)


def test_h_pos_entry_that_is_not_a_pair_is_refused():
    with pytest.raises(LocationError, match=r"unit 'h.pos' takes \[heads_per_example"):
        norm({"base": [[[0]]]}, units=["h.pos"], keys=["a"])
    assert issubclass(LocationError, pv.PyveneError)


def test_subspaces_broadcast_and_refusal():
    assert broadcast_subspaces(None, 2, 3) == [None, None]
    assert broadcast_subspaces(1, 2, 3) == [[[1]] * 3] * 2
    assert broadcast_subspaces([0, 2], 2, 3) == [[[0, 2]] * 3] * 2
    assert broadcast_subspaces(torch.tensor([0, 2]), 1, 1) == [[[0, 2]]]
    assert broadcast_subspaces({"k": 1}, 2, 3) == [{"k": 1}] * 2
    assert broadcast_subspaces([[[0]], None], 2, 3) == [[[0]], None]
    with pytest.raises(LocationError, match="subspaces: got 3 entries for 2"):
        broadcast_subspaces([[[0]], None, None], 2, 3)


def test_get_loc_refuses_other_units():
    with pytest.raises(NotImplementedError, match="'pos'"):
        GET_LOC((0, 1), unit="pos")
