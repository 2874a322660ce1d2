"""CausalModel: structure, evaluation, live paths and filters, editing and errors, checked against
direct Python evaluations of the same rules (datasets: tests/test_causal_datasets.py)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from causal_models_by_hand import F, T, and_model, equality_model_by_hand, label_by_hand

from pyvene.causal_datasets import (
    hierarchical_equality_causal_model,
)
from pyvene.causal_model import CausalModel, CausalModelError, UnknownVariableError


# ---------------------------------------------------------------------------- structure
def test_structure_and_caller_list_untouched():
    variables = ["C", "B", "A"]
    values = {"A": [F, T], "B": [F, T], "C": [F, T]}
    parents = {"A": [], "B": [], "C": ["A", "B"]}
    functions = {"A": lambda: T, "B": lambda: T, "C": lambda a, b: a and b}
    m = CausalModel(variables, values, parents, functions)
    assert variables == ["C", "B", "A"]  # the original sorted the caller's list in place
    assert m.variables == ["A", "B", "C"]
    assert (m.inputs, m.outputs, m.intermediates) == (["A", "B"], ["C"], [])
    assert m.timesteps == {"A": 0, "B": 0, "C": 1} and m.end_time == 1
    assert m.children == {"A": ["C"], "B": ["C"], "C": []}
    assert m.pos == {} and m.pos is not and_model().pos  # no shared mutable default


def test_timesteps_longest_path_and_outputs_last():
    # A -> B -> D, A -> D, A -> E (output) : D at 2 (not BFS depth 1), E moved to the end (2)
    values = {v: [F, T] for v in "ABDE"}
    parents = {"A": [], "B": ["A"], "D": ["A", "B"], "E": ["A"]}
    functions = {"A": lambda: T, "B": lambda a: a, "D": lambda a, b: a and b, "E": lambda a: a}
    m = CausalModel(list("ABDE"), values, parents, functions)
    assert m.timesteps == {"A": 0, "B": 1, "D": 2, "E": 2}
    assert m.variables == ["A", "B", "D", "E"] and m.outputs == ["D", "E"]
    assert m.intermediates == ["B"]


def test_explicit_timesteps_checked():
    m = and_model(timesteps={"A": 0, "B": 3, "C": 5})
    assert m.timesteps == {"A": 0, "B": 3, "C": 5} and m.end_time == 5
    with pytest.raises(CausalModelError, match="not earlier"):
        and_model(timesteps={"A": 0, "B": 1, "C": 1})
    with pytest.raises(CausalModelError, match="miss 'C'"):
        and_model(timesteps={"A": 0, "B": 1})


# ---------------------------------------------------------------------------- evaluation
def test_run_forward_matches_direct_evaluation():
    m = and_model()
    assert m.run_forward() == {"A": T, "B": T, "C": T}
    for a, b in itertools.product([F, T], repeat=2):
        assert m.run_forward({"A": a, "B": b}) == {"A": a, "B": b, "C": a and b}
    assert m.run_forward({"A": F, "B": F, "C": T})["C"] is T  # a fixed non-input stays fixed


def test_run_interchange_spec_cases():
    m = and_model()
    assert m.run_interchange({"A": T, "B": F}, {"B": {"A": F, "B": T}})["C"] is T
    assert m.run_interchange({"A": F, "B": F}, {"C": {"A": T, "B": T}})["C"] is T
    assert m.run_interchange({"A": T, "B": T}, {"A": {"A": F, "B": T}})["C"] is F


def test_equiv_classes():
    m = and_model()
    classes = m.generate_equiv_classes()
    assert classes == {
        "C": {F: [{"A": F, "B": F}, {"A": F, "B": T}, {"A": T, "B": F}], T: [{"A": T, "B": T}]}
    }
    bad = CausalModel(["A", "C"], {"A": [0, 1], "C": [0]}, {"A": [], "C": ["A"]},
                      {"A": lambda: 0, "C": lambda a: a})  # fmt: skip
    with pytest.raises(CausalModelError, match=r"= 1 is not in values\['C'\]"):
        bad.generate_equiv_classes()


def test_hierarchical_forward_and_interchange_against_direct_python():
    model, sampler = hierarchical_equality_causal_model(seed=3)
    by_hand = equality_model_by_hand(model.values["W"])
    assert model.variables == by_hand.variables == ["W", "X", "Y", "Z", "WX", "YZ", "O"]
    assert model.inputs == ["W", "X", "Y", "Z"] and model.intermediates == ["WX", "YZ"]
    rng = random.Random(0)
    for _ in range(300):
        base, s1, s2 = sampler(), sampler(), sampler()
        if rng.random() < 0.3:  # also settings from the finite pool, with random collisions
            base = {v: rng.choice(model.values[v]) for v in model.inputs}
        w, x, y, z = (base[v] for v in "WXYZ")
        expected = {**base, "WX": w == x, "YZ": y == z, "O": (w == x) == (y == z)}
        assert model.run_forward(base) == by_hand.run_forward(base) == expected
        for wx_src, yz_src in [(s1, None), (None, s2), (s1, s2)]:
            sources = {k: s for k, s in (("WX", wx_src), ("YZ", yz_src)) if s is not None}
            got = model.run_interchange(base, sources)["O"]
            assert got == by_hand.run_interchange(base, sources)["O"]
            assert got == label_by_hand(base, wx_src, yz_src)


# ---------------------------------------------------------------------------- paths, filters
def test_live_paths_and_filters():
    m = and_model()
    assert m.find_live_paths({"A": T, "B": T}) == {2: [["A", "C"], ["B", "C"]]}
    assert m.find_live_paths({"A": T, "B": F}) == {2: [["B", "C"]]}  # only B flips C
    assert m.find_live_paths({"A": F, "B": F}) == {}
    total = m.run_forward({"A": T, "B": F})
    assert m.get_partial_filter({"C": F})(total) and not m.get_partial_filter({"C": T})(total)
    assert m.get_specific_path_filter("B", "C")(total)
    assert not m.get_specific_path_filter("A", "C")(total)
    assert m.get_path_maxlen_filter([2])(total)
    assert m.get_path_maxlen_filter([1])(m.run_forward({"A": F, "B": F}))  # no live path


# ---------------------------------------------------------------------------- editing, errors
def test_add_variable_rewires_children_and_rolls_back():
    m = and_model()
    m.add_variable("N", [F, T], ["A"], ["C"], lambda a: not a,
                   child_functions={"C": lambda a, b, n: (a and b) or n})  # fmt: skip
    assert m.parents["C"] == ["A", "B", "N"] and m.children["A"] == ["C", "N"]
    assert m.intermediates == ["N"] and m.timesteps["C"] == 2
    for a, b in itertools.product([F, T], repeat=2):
        assert m.run_forward({"A": a, "B": b})["C"] == ((a and b) or (not a))
    with pytest.raises(CausalModelError, match="child_functions"):
        m.add_variable("Q", [F, T], ["A"], ["C"], lambda a: a)
    with pytest.raises(CausalModelError, match="failed on the default setting"):
        m.add_variable("Q", [F, T], ["A"], ["C"], lambda a: a, child_functions={"C": lambda a: a})
    assert "Q" not in m.variables and m.parents["C"] == ["A", "B", "N"]  # rolled back
    assert m.run_forward({"A": F, "B": F})["C"] is T


def test_bad_names_raise_with_closest_match():
    m, _ = hierarchical_equality_causal_model(seed=0)
    with pytest.raises(UnknownVariableError, match="Did you mean .*'WX'") as info:
        m.run_forward({"Wx": T})
    assert isinstance(info.value, ValueError)
    assert "W, X, Y, Z, WX, YZ, O" in str(info.value)  # the valid choices are listed
    with pytest.raises(UnknownVariableError, match="Did you mean .*'YZ'"):
        m.run_interchange({}, {"YZ1": {}})
    with pytest.raises(UnknownVariableError, match="Did you mean .*'O'"):
        m.get_partial_filter({"o": T})
    with pytest.raises(UnknownVariableError, match=r"parents\['C'\].*Did you mean .*'B'"):
        CausalModel(["A", "B", "C"], {v: [0] for v in "ABC"}, {"A": [], "B": [], "C": ["BB"]},
                    {"A": lambda: 0, "B": lambda: 0, "C": lambda b: b})  # fmt: skip


def test_invalid_structures():
    vals = {v: [0, 1] for v in "AB"}
    fns = {"A": lambda a: a, "B": lambda b: b}
    with pytest.raises(CausalModelError, match="cycle"):
        CausalModel(["A", "B"], vals, {"A": ["B"], "B": ["A"]}, fns)
    with pytest.raises(CausalModelError, match="no entry in"):
        CausalModel(["A", "B"], vals, {"A": []}, {"A": lambda: 0})
    with pytest.raises(CausalModelError, match="unique"):
        CausalModel(["A", "A"], vals, {"A": []}, {"A": lambda: 0})
    with pytest.raises(CausalModelError, match="failed on the default setting"):
        CausalModel(["A"], {"A": [0]}, {"A": []}, {"A": lambda x: x})


def test_input_output_to_tensor_and_drawing():
    model, sampler = hierarchical_equality_causal_model(embedding_dim=3, seed=0)
    s = sampler()
    x = model.input_to_tensor(s)
    assert x.shape == (12,) and x.dtype == torch.float32
    assert torch.allclose(x, torch.tensor([c for v in "WXYZ" for c in s[v]]))
    assert model.output_to_tensor(model.run_forward(s)).tolist() == [float(label_by_hand(s))]
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    fig = model.print_setting(model.run_forward(s), show=False)
    assert fig is not None and and_model().print_structure(show=False) is not None
