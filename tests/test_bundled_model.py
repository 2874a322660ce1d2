"""The core on the bundled SmolLM2-135M (30 layers, 9 query / 3 key-value heads)."""

from __future__ import annotations

import pytest
import torch

import pyvene as pv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm():
    return pv.load_smollm2()


def test_collect_block_output_equals_hidden_states(smollm):
    model, tok = smollm
    inputs = tok("The Eiffel Tower is in the city of", return_tensors="pt")
    layers = list(range(model.config.num_hidden_layers - 1))  # the last one is post-norm
    pvm = pv.IntervenableModel(
        [
            {"layer": l_, "component": "block_output", "intervention_type": pv.CollectIntervention}
            for l_ in layers
        ],
        model,
    )
    with torch.no_grad():
        (_, collected), _ = pvm(inputs)
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    for l_, got in zip(layers, collected):
        torch.testing.assert_close(got, hidden[l_ + 1], rtol=0, atol=0)


def test_gqa_head_components_have_kv_head_count(smollm):
    model, tok = smollm
    inputs = tok("Hello there", return_tensors="pt")
    pvm = pv.IntervenableModel(
        [
            {"layer": 3, "component": c, "unit": "h", "intervention_type": pv.CollectIntervention}
            for c in ("head_query_output", "head_key_output", "head_attention_value_output")
        ],
        model,
    )
    with torch.no_grad():
        (_, (q, k, o)), _ = pvm(inputs)
    seq = inputs["input_ids"].shape[1]
    assert q.shape == (1, 9, seq, 64) and k.shape == (1, 3, seq, 64) and o.shape == (1, 9, seq, 64)


def test_tutorial1_patching_moves_paris(smollm):
    model, tok = smollm
    base = tok("The Colosseum is in the city of", return_tensors="pt")
    source = tok("The Eiffel Tower is in the city of", return_tensors="pt")
    paris, rome = tok.encode(" Paris")[0], tok.encode(" Rome")[0]
    s_last, b_last = source["input_ids"].shape[1] - 1, base["input_ids"].shape[1] - 1
    with torch.no_grad():
        clean = torch.softmax(model(**base).logits[0, -1], -1)
    probs = {}
    for layer in (2, 12, 20, 24, 29):
        pvm = pv.IntervenableModel({"layer": layer, "component": "block_output"}, model)
        with torch.no_grad():
            _, out = pvm(base, [source], {"sources->base": ([[[s_last]]], [[[b_last]]])})
        probs[layer] = torch.softmax(out.logits[0, -1], -1)
    assert clean[rome] > 0.5 and clean[paris] < 0.01
    assert abs(probs[2][paris] - clean[paris]) < 0.01  # early layers: the answer is not there yet
    assert probs[24][paris] > clean[paris] + 0.2  # middle-to-late layers carry it
    assert probs[29][paris] > 0.5 and probs[29][rome] < probs[29][paris]
