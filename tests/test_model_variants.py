"""One family table serves base, CausalLM and classifier variants; any nn.Module works by
module path; SkipIntervention replaces a module's output with its (source-run) input."""

from __future__ import annotations

import torch
from conftest import VOCAB, ids, make_gpt2, make_llama
from torch import nn
from transformers import GPT2ForSequenceClassification, LlamaForSequenceClassification

import pyvene as pv


def _collect(model, component, layer, inputs):
    pvm = pv.IntervenableModel(
        {"layer": layer, "component": component, "intervention_type": pv.CollectIntervention},
        model,
    )
    (_, got), _ = pvm(inputs, unit_locations={"base": 2})
    return got[0]


def test_base_lm_and_classifier_variants_share_the_table():
    lm = make_gpt2()
    inputs = ids(2, 5, 0)
    expect = lm.transformer(**inputs, output_hidden_states=True).hidden_states[2][:, [2]]
    torch.testing.assert_close(_collect(lm.transformer, "block_output", 1, inputs), expect)
    torch.testing.assert_close(_collect(lm, "block_output", 1, inputs), expect)
    cls_cfg = lm.config
    cls_cfg.num_labels = 3
    cls_cfg.pad_token_id = 0
    clf = GPT2ForSequenceClassification(cls_cfg).eval()
    clf.transformer.load_state_dict(lm.transformer.state_dict())
    torch.testing.assert_close(_collect(clf, "block_output", 1, inputs), expect)

    llm = make_llama()
    expect = llm.model(**inputs, output_hidden_states=True).hidden_states[1][:, [2]]
    torch.testing.assert_close(_collect(llm.model, "block_output", 0, inputs), expect)
    lclf = LlamaForSequenceClassification(llm.config).eval()
    lclf.model.load_state_dict(llm.model.state_dict())
    torch.testing.assert_close(_collect(lclf, "block_output", 0, inputs), expect)


def test_plain_module_by_path():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    x = {"input": torch.randn(3, 1, 4)}
    src = {"input": torch.randn(3, 1, 4)}
    pvm = pv.IntervenableModel({"component": "0.output"}, net)
    _, out = pvm(x, [src], {"sources->base": 0})
    expect = net[2](net[1](net[0](src["input"])))
    torch.testing.assert_close(out, expect)
    pvm = pv.IntervenableModel(
        {"component": "1.output", "intervention_type": pv.CollectIntervention}, net
    )
    (_, got), _ = pvm(x)
    torch.testing.assert_close(got[0], net[1](net[0](x["input"])))


def test_skip_intervention_skips_a_layer_at_chosen_positions():
    model = make_gpt2()
    base = ids(1, 6, 1)
    block = model.transformer.h[1]

    def pre(mod, args):
        pre.x = args[0].clone()

    def post(mod, args, out):
        new = out.clone()
        new[:, 3] = pre.x[:, 3]  # this block does nothing at position 3
        return new

    h1, h2 = block.register_forward_pre_hook(pre), block.register_forward_hook(post)
    try:
        expect = model(**base).logits
    finally:
        h1.remove()
        h2.remove()
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.SkipIntervention}, model
    )
    _, out = pvm(base, [base], {"sources->base": 3})
    torch.testing.assert_close(out.logits, expect)
    assert out.logits.shape == (1, 6, VOCAB)
