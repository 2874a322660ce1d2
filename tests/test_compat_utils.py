"""The original's utility modules (SPEC B §1.2): ``pyvene.models.constants`` split functions and
``basic_utils``, each checked against a manual computation."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from conftest import VOCAB, ids, make_gpt2, make_llama
from torch import nn

import pyvene as pv
from pyvene.models.constants import (
    split_half,
    split_head_and_permute,
    split_heads,
    split_three,
)

# --------------------------------------------------------------------------- constants


def test_split_functions_against_manual_slices():
    x = torch.arange(2 * 3 * 12.0).view(2, 3, 12)
    for i in range(3):
        torch.testing.assert_close(split_three(x, i), x[..., 4 * i : 4 * (i + 1)])
    torch.testing.assert_close(split_half(x, 1), x[..., 6:])
    manual = torch.empty(2, 4, 3, 3)
    for b in range(2):
        for h in range(4):
            for s in range(3):
                manual[b, h, s] = x[b, s, 3 * h : 3 * h + 3]
    torch.testing.assert_close(split_heads(x, 4, 3), manual)
    torch.testing.assert_close(split_head_and_permute(x, 4), manual)
    with pytest.raises(ValueError, match="does not split into 5"):
        pv.models.constants.split_and_select(x, 5, 0)


# --------------------------------------------------------------------------- basic_utils


def test_sigmoid_boundary_closed_form():
    x = torch.tensor([-2.0, 0.5, 3.0, 7.5])
    got = pv.sigmoid_boundary(x, 0.0, 4.0, 0.5)

    def sig(v):
        return 1.0 / (1.0 + math.exp(-v))

    expect = [sig((v - 0.0) / 0.5) * sig((4.0 - v) / 0.5) for v in x.tolist()]
    torch.testing.assert_close(got, torch.tensor(expect))


def test_harmonic_sigmoid_boundary_piecewise():
    lo, hi, t = 1.0, 5.0, 0.7
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0, 6.5])
    got = pv.harmonic_sigmoid_boundary(x, lo, hi, t)

    def sig(v):
        return 1.0 / (1.0 + math.exp(-v))

    def ref(v):
        if v <= lo:
            return sig((v - lo) / t)
        if v >= hi:
            return sig((hi - v) / t)
        h = 1.0 / (0.5 * (1.0 / abs(v - lo) + 1.0 / abs(v - hi)))
        return sig(h / t)

    torch.testing.assert_close(got, torch.tensor([ref(v) for v in x.tolist()]))


def test_count_parameters_counts_trainable_elements():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert pv.count_parameters(net) == (3 * 4 + 4) + (4 * 2 + 2)
    net[0].weight.requires_grad_(False)
    assert pv.count_parameters(net) == 4 + (4 * 2 + 2)


def test_permutation_matrix_and_closeness_loss():
    torch.manual_seed(0)
    p = pv.random_permutation_matrix(6)
    assert set(p.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(p.sum(0), torch.ones(6))
    torch.testing.assert_close(p.sum(1), torch.ones(6))
    assert pv.closeness_to_permutation_loss(p).item() == 0.0
    r = torch.tensor([[0.5, 0.5], [0.5, 1.0]])
    rows = (abs(1.0 - 1) + abs(1.5 - 1)) / 2
    cols = (abs(1.0 - 1) + abs(1.5 - 1)) / 2
    entry = (0.25 + 0.25 + 0.25 + 0.0) / 4
    assert pv.closeness_to_permutation_loss(r).item() == pytest.approx(0.5 * (rows + cols) + entry)


def test_set_seed_seeds_every_generator():
    pv.set_seed(11)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    pv.set_seed(11)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_list_depth_batch_size_get_loc_and_directory(tmp_path):
    assert pv.get_list_depth(3) == 0
    assert pv.get_list_depth([]) == 1
    assert pv.get_list_depth([[1], [[2]]]) == 3
    assert pv.get_batch_size(torch.zeros(5, 2)) == 5
    assert pv.get_batch_size({"input_ids": torch.zeros(4, 7)}) == 4
    assert pv.GET_LOC((2, 5), batch_size=2) == [[[[2], [2]], [[5], [5]]]]
    with pytest.raises(NotImplementedError):
        pv.GET_LOC((2, 5), unit="pos")
    target = tmp_path / "a" / "b"
    pv.create_directory(target)
    pv.create_directory(target)  # idempotent
    assert target.is_dir()


def test_get_type_from_string_resolves_only_known_places():
    assert pv.get_type_from_string(
        "<class 'pyvene.models.interventions.VanillaIntervention'>"
    ) is pv.VanillaIntervention  # fmt: skip
    assert pv.get_type_from_string("<class 'torch.nn.modules.linear.Linear'>") is nn.Linear
    with pytest.raises(pv.PyveneError, match="neither a registered intervention"):
        pv.get_type_from_string("<class 'os.system'>")


@pytest.mark.parametrize("kind", ["gpt2_lm", "gpt2_base", "llama_lm"])
def test_embed_to_distrib_applies_the_unembedding(kind):
    inputs = ids(2, 5, 0)
    if kind == "llama_lm":
        model = make_llama()
        hidden = model.model(**inputs).last_hidden_state
        logits = hidden @ model.lm_head.weight.T
    else:
        lm = make_gpt2()
        model = lm if kind == "gpt2_lm" else lm.transformer
        hidden = lm.transformer(**inputs).last_hidden_state
        logits = hidden @ lm.transformer.wte.weight.T
    hidden = hidden.detach()
    logits = logits.detach()
    got = pv.embed_to_distrib(model, hidden, logits=True)
    torch.testing.assert_close(got, logits, rtol=1e-5, atol=1e-5)
    if kind != "gpt2_base":  # the LM head's own logits agree
        torch.testing.assert_close(got, model(**inputs).logits.detach(), rtol=1e-5, atol=1e-5)
    probs = pv.embed_to_distrib(model, hidden)
    torch.testing.assert_close(probs, torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True))
    torch.testing.assert_close(
        pv.embed_to_distrib(model, hidden, log=True),
        logits - torch.logsumexp(logits, -1, keepdim=True),
    )
    assert probs.shape == (2, 5, VOCAB)


def test_embed_to_distrib_refuses_untied_base_model():
    llama = make_llama()
    with pytest.raises(pv.PyveneError, match="LM head or tied input embeddings"):
        pv.embed_to_distrib(llama.model, torch.zeros(1, 2, 32))


class FakeTokenizer:
    def decode(self, tok):
        tok = tok if isinstance(tok, int) else int(tok)
        return {0: " the", 1: "cat\n", 2: "sat", 3: "!"}[tok]


def test_format_token_and_top_vals(capsys):
    tok = FakeTokenizer()
    assert pv.format_token(tok, 0) == "_the"
    assert pv.format_token(tok, 1) == "cat\\n"
    res = torch.tensor([0.1, 0.7, 0.05, 0.15])
    assert pv.top_vals(tok, res, n=2, return_results=True) == [
        ("cat\\n", pytest.approx(0.7)),
        ("!", pytest.approx(0.15)),
    ]
    assert pv.top_vals(tok, res, n=1) is None
    shown = "cat\\n"
    assert capsys.readouterr().out == f"{shown:<20} {res[1].item()}\n"
