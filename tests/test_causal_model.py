"""CausalModel and causal datasets, checked against direct Python evaluations of the same rules."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest
import torch

from pyvene.causal_datasets import (
    HIERARCHICAL_EQUALITY_CASES,
    hierarchical_equality_causal_model,
    hierarchical_equality_intervention_id,
)
from pyvene.causal_model import CausalModel, CausalModelError, UnknownVariableError

T, F = True, False


def and_model(**kwargs) -> CausalModel:
    """A, B inputs (defaults True), C = A and B."""
    values = {"A": [F, T], "B": [F, T], "C": [F, T]}
    parents = {"A": [], "B": [], "C": ["A", "B"]}
    functions = {"A": lambda: T, "B": lambda: T, "C": lambda a, b: a and b}
    return CausalModel(["C", "B", "A"], values, parents, functions, **kwargs)


def equality_model_by_hand(pool: list[tuple[float, ...]]) -> CausalModel:
    """The hierarchical equality model written out independently of the library builder."""
    variables = ["W", "X", "Y", "Z", "WX", "YZ", "O"]
    values = {v: pool for v in "WXYZ"} | {v: [T, F] for v in ("WX", "YZ", "O")}
    parents = {"W": [], "X": [], "Y": [], "Z": [], "WX": ["W", "X"], "YZ": ["Y", "Z"]}
    parents["O"] = ["WX", "YZ"]
    functions = {v: (lambda: pool[0]) for v in "WXYZ"}
    functions.update({"WX": lambda w, x: w == x, "YZ": lambda y, z: y == z})
    functions["O"] = lambda wx, yz: wx == yz
    return CausalModel(variables, values, parents, functions)


def label_by_hand(base: dict, src_wx: dict | None = None, src_yz: dict | None = None) -> bool:
    """(W==X) == (Y==Z), with WX / YZ taken from the sources when given."""
    wx = (src_wx or base)["W"] == (src_wx or base)["X"]
    yz = (src_yz or base)["Y"] == (src_yz or base)["Z"]
    return wx == yz


def chunks(row: torch.Tensor, d: int = 4) -> dict:
    """Decode a 16-dim float32 input row back into the four entities (2 decimals)."""
    return {
        v: tuple(round(c, 2) for c in row[i * d : (i + 1) * d].tolist())
        for i, v in enumerate("WXYZ")
    }


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


# ---------------------------------------------------------------------------- samplers
def test_tree_balanced_sampler_is_balanced_and_correct():
    m = and_model(seed=0)
    outs = [m.run_forward(m.sample_input_tree_balanced())["C"] for _ in range(1000)]
    assert 400 < sum(outs) < 600  # uniform sampling of inputs would give ~250
    for value in (T, F):
        for _ in range(20):
            assert m.run_forward(m.sample_input_tree_balanced("C", value))["C"] is value
    with pytest.raises(CausalModelError, match="reachable values"):
        m.sample_input_tree_balanced("C", "maybe")
    assert m.sample_input_tree_balanced("A", F)["A"] is F  # input output_var


def test_tree_balanced_sampler_on_dag_with_shared_ancestor():
    # A feeds both B and C: picking parent assignments top-down may conflict on A.
    values = {"A": [F, T], "E": [F, T], "B": [F, T], "C": [F, T], "D": [F, T]}
    parents = {"A": [], "E": [], "B": ["A"], "C": ["A", "E"], "D": ["B", "C"]}
    functions = {"A": lambda: F, "E": lambda: F, "B": lambda a: a, "C": lambda a, e: a or e,
                 "D": lambda b, c: b != c}  # fmt: skip
    m = CausalModel(list(values), values, parents, functions, seed=1)
    for value in (T, F):
        for _ in range(50):
            assert m.run_forward(m.sample_input_tree_balanced("D", value))["D"] is value


def test_samplers_reproducible_and_errors():
    a, b = and_model(seed=7), and_model(seed=7)
    assert [a.sample_input() for _ in range(20)] == [b.sample_input() for _ in range(20)]
    m = and_model(seed=0)
    assert m.sample_input(mandatory=lambda s: s["C"]) == {"A": T, "B": T}
    with pytest.raises(CausalModelError, match="no input satisfied"):
        m.sample_input(mandatory=lambda s: False, max_tries=10)
    with pytest.raises(CausalModelError, match="intermediate"):
        m.sample_intervention()


def test_hierarchical_sampler_cases_balanced_and_targeted():
    model, sampler = hierarchical_equality_causal_model(embedding_dim=4, seed=0)
    pattern_of = {}
    for key, pattern in HIERARCHICAL_EQUALITY_CASES.items():
        pattern_of[key] = pattern
    counts = Counter()
    for _ in range(4000):
        s = sampler()
        ents = [s[v] for v in "WXYZ"]
        for e in ents:
            assert len(e) == 4 and all(-1 <= c <= 1 and round(c, 2) == c for c in e)
        # the pattern of equalities is one of ABCD, AABB, AABC, ABCC
        letters = {}
        pattern = "".join(letters.setdefault(e, "ABCD"[len(letters)]) for e in ents)
        assert pattern in HIERARCHICAL_EQUALITY_CASES.values()
        counts[pattern] += 1
    assert all(900 < c < 1100 for c in counts.values()) and len(counts) == 4
    for var, value in [("WX", T), ("WX", F), ("YZ", T), ("YZ", F), ("O", T), ("O", F)]:
        for _ in range(50):
            assert model.run_forward(sampler(output_var=var, output_var_value=value))[var] is value
    e = (0.5, 0.5, 0.5, 0.5)
    assert sampler(output_var="Y", output_var_value=e)["Y"] == e
    with pytest.raises(UnknownVariableError, match="Did you mean .*'YZ'"):
        sampler(output_var="yz", output_var_value=T)


# ---------------------------------------------------------------------------- datasets
def test_factual_dataset_shapes_and_values():
    m = and_model()
    data = m.generate_factual_dataset(4, sampler=lambda: {"A": F, "B": F})
    X = torch.stack([d["input_ids"] for d in data])
    y = torch.stack([d["labels"] for d in data])
    assert X.shape == (4, 2) and y.shape == (4, 1)
    assert torch.equal(X, torch.zeros(4, 2)) and torch.equal(y, torch.zeros(4, 1))
    raw = m.generate_factual_dataset(2, sampler=lambda: {"A": T, "B": F}, return_tensors=False)
    assert raw == [{"input_ids": {"A": T, "B": F}, "labels": {"A": T, "B": F, "C": F}}] * 2
    # the filter sees the total setting, so it may name a non-input variable
    kept = m.generate_factual_dataset(50, filter=m.get_partial_filter({"C": T}), seed=0)
    assert all(torch.equal(d["input_ids"], torch.ones(2)) for d in kept)


def test_factual_dataset_hierarchical_labels_from_tensors():
    model, sampler = hierarchical_equality_causal_model(seed=0)
    data = model.generate_factual_dataset(500, sampler, seed=1, stacked=True)
    assert data["input_ids"].shape == (500, 16) and data["labels"].shape == (500, 1)
    for row, label in zip(data["input_ids"], data["labels"]):
        assert bool(label) == label_by_hand(chunks(row))
    assert 0.4 < data["labels"].mean() < 0.6


def test_counterfactual_dataset_spec_case():
    m = and_model()

    def sampler(output_var=None, output_var_value=None):
        return {"A": T, "B": T} if output_var is not None else {"A": T, "B": F}

    data = m.generate_counterfactual_dataset(
        1, lambda iv: 0, 1, sampler=sampler, intervention_sampler=lambda: {"B": T},
        return_tensors=False,
    )  # fmt: skip
    (ex,) = data
    assert ex["input_ids"] == {"A": T, "B": F}
    assert ex["source_input_ids"][0]["B"] is T and ex["intervention_id"] == [0]
    assert ex["base_labels"]["C"] is F and ex["labels"]["C"] is T


def test_counterfactual_dataset_size_groups_and_padding():
    model, sampler = hierarchical_equality_causal_model(seed=0)
    iid = hierarchical_equality_intervention_id
    data = model.generate_counterfactual_dataset(7, iid, 3, sampler, seed=2)
    assert len(data) == 7  # the original returned a multiple of batch_size (9)
    for group in (data[0:3], data[3:6], data[6:7]):
        assert len({int(d["intervention_id"]) for d in group}) == 1
    for d in data:
        assert d["input_ids"].shape == (16,) and d["source_input_ids"].shape == (2, 16)
        assert d["labels"].shape == d["base_labels"].shape == (1,)
        assert d["intervention_id"].shape == (1,) and d["intervention_id"].dtype == torch.long
        if int(d["intervention_id"]) != 2:  # one source, the second slot is zero padding
            assert torch.equal(d["source_input_ids"][1], torch.zeros(16))


def test_counterfactual_labels_match_run_interchange_and_hand_computation():
    model, sampler = hierarchical_equality_causal_model(seed=0)
    iid = hierarchical_equality_intervention_id
    n = 600
    data = model.generate_counterfactual_dataset(n, iid, 4, sampler, seed=5, stacked=True)
    raw = model.generate_counterfactual_dataset(n, iid, 4, sampler, seed=5, return_tensors=False)
    assert data["input_ids"].shape == (n, 16) and data["source_input_ids"].shape == (n, 2, 16)
    ids = Counter()
    for k, ex in enumerate(raw):
        i = ex["intervention_id"][0]
        ids[i] += 1
        base, srcs = ex["input_ids"], ex["source_input_ids"]
        order = {0: ["WX"], 1: ["YZ"], 2: ["WX", "YZ"]}[i]
        # the library's label is run_interchange on this example's base and sources ...
        expected = model.run_interchange(base, dict(zip(order, srcs)))
        assert ex["labels"] == expected
        assert ex["base_labels"] == model.run_forward(base)
        # ... and the independent rule computed from the tensors gives the same
        x, s = data["input_ids"][k], data["source_input_ids"][k]
        assert chunks(x) == base and int(data["intervention_id"][k]) == i
        wx_src = chunks(s[0]) if i in (0, 2) else None
        yz_src = chunks(s[1]) if i == 2 else (chunks(s[0]) if i == 1 else None)
        assert bool(data["labels"][k]) == label_by_hand(chunks(x), wx_src, yz_src)
        assert bool(data["base_labels"][k]) == label_by_hand(chunks(x))
    assert all(130 < ids[i] < 270 for i in range(3))  # {WX}, {YZ}, {WX, YZ} equally likely
    assert 0.3 < data["labels"].mean() < 0.7


def test_counterfactual_default_sampler_and_custom_functions():
    m = CausalModel(
        ["A", "B", "M", "C"], {v: [F, T] for v in "ABMC"},
        {"A": [], "B": [], "M": ["A"], "C": ["M", "B"]},
        {"A": lambda: T, "B": lambda: T, "M": lambda a: not a, "C": lambda m, b: m and b},
        seed=0,
    )  # fmt: skip
    data = m.generate_counterfactual_dataset(
        40, lambda iv: 0, 8, input_function=lambda s: torch.tensor([s["A"], s["B"]]) * 2.0,
        output_function=lambda s: torch.tensor([int(s["C"])]),
    )  # fmt: skip
    for d in data:
        assert d["source_input_ids"].shape == (1, 2)
        assert set(d["input_ids"].tolist()) <= {0.0, 2.0}  # custom input_function honoured
        a, b = (bool(v) for v in d["input_ids"])
        src_a = bool(d["source_input_ids"][0, 0])
        assert int(d["labels"]) == int((not src_a) and b)
        assert int(d["base_labels"]) == int((not a) and b)


def test_counterfactual_sampler_without_keywords_is_called_plainly():
    model, sampler = hierarchical_equality_causal_model(seed=0)
    plain = lambda: sampler()  # noqa: E731 (takes no output_var keywords)
    data = model.generate_counterfactual_dataset(
        64, hierarchical_equality_intervention_id, 8, plain, seed=0, return_tensors=False
    )
    for ex in data:
        order = {0: ["WX"], 1: ["YZ"], 2: ["WX", "YZ"]}[ex["intervention_id"][0]]
        sources = dict(zip(order, ex["source_input_ids"]))
        assert ex["labels"] == model.run_interchange(ex["input_ids"], sources)


def test_datasets_reproducible_with_seed():
    model, sampler = hierarchical_equality_causal_model(seed=0)
    iid = hierarchical_equality_intervention_id
    a = model.generate_counterfactual_dataset(50, iid, 10, sampler, seed=11, stacked=True)
    b = model.generate_counterfactual_dataset(50, iid, 10, sampler, seed=11, stacked=True)
    c = model.generate_counterfactual_dataset(50, iid, 10, sampler, seed=12, stacked=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["input_ids"], c["input_ids"])
    other, other_sampler = hierarchical_equality_causal_model(seed=0)
    d = other.generate_counterfactual_dataset(50, iid, 10, other_sampler, seed=11)
    assert torch.equal(torch.stack([e["source_input_ids"] for e in d]), a["source_input_ids"])


def test_dataset_argument_errors():
    m = and_model()
    with pytest.raises(CausalModelError, match="batch_size"):
        m.generate_counterfactual_dataset(4, lambda iv: 0, 0)
    with pytest.raises(CausalModelError, match="rejected"):
        m.generate_factual_dataset(3, filter=lambda s: False, max_tries=5)
    with pytest.raises(CausalModelError, match="WX and/or YZ"):
        hierarchical_equality_intervention_id({"O": T})
    assert m.generate_factual_dataset(0) == []


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
