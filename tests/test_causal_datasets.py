"""Causal-model samplers and the factual / counterfactual datasets built from a CausalModel,
checked against direct Python evaluations of the same rules."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from causal_models_by_hand import F, T, and_model, chunks, label_by_hand

from pyvene.causal_datasets import (
    HIERARCHICAL_EQUALITY_CASES,
    hierarchical_equality_causal_model,
    hierarchical_equality_intervention_id,
)
from pyvene.causal_model import CausalModel, CausalModelError, UnknownVariableError


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
