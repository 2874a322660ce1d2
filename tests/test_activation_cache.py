"""``pv.collect``: one forward records every requested (component, layer), exactly equal to
``output_hidden_states`` and to plain torch hooks; the model is left as it was."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import hooked, ids, make_gpt2, make_llama

import pyvene as pv


def plain_hooks(model, sites):
    """Record {(name, layer): tensor} with plain torch hooks: sites is [(name, module, side)]."""
    got, handles = {}, []
    for key, module, side in sites:
        handles.append(hooked(module, side, lambda t, key=key: got.__setitem__(key, t.clone())))
    try:
        with torch.no_grad():
            out = model(**inputs_of(model))
    finally:
        for h in handles:
            h.remove()
    return got, out


def inputs_of(model):
    return ids(2, 6, seed=1)


def test_block_output_equals_output_hidden_states():
    model = make_llama()
    inputs = ids(2, 6, seed=1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "nothing runs" warning: collection is the point
        cache = pv.collect(model, inputs)  # default: block_output at every layer
        ref = model(**inputs, output_hidden_states=True)
    assert list(cache) == [("block_output", layer) for layer in range(3)]
    for layer in range(2):  # HF's last hidden state is after the final norm
        assert torch.equal(cache["block_output", layer], ref.hidden_states[layer + 1])
    assert torch.equal(cache.output.logits, ref.logits)  # the same forward, unchanged
    stacked = cache.stack("block_output")
    assert stacked.shape == (3, 2, 6, 32) and torch.equal(stacked[1], ref.hidden_states[2])


def test_components_equal_plain_hooks_llama():
    model = make_llama()
    layers = model.model.layers
    sites = []
    for layer in (0, 2):
        sites += [
            (("block_output", layer), layers[layer], "output"),
            (("mlp_output", layer), layers[layer].mlp, "output"),
            (("attention_output", layer), layers[layer].self_attn, "output"),
            (("head_attention_value_output", layer), layers[layer].self_attn.o_proj, "input"),
        ]
    ref, out = plain_hooks(model, sites)
    comps = ["block_output", "mlp_output", "attention_output", "head_attention_value_output"]
    with torch.no_grad():
        cache = pv.collect(model, inputs_of(model)["input_ids"], components=comps, layers=[0, 2])
    assert set(cache) == set(ref) and len(cache) == 8
    for (comp, layer), tensor in ref.items():
        if comp.startswith("head_"):  # [B, S, H*d] -> [B, H, S, d]
            tensor = tensor.view(2, 6, 4, 8).transpose(1, 2)
        assert torch.equal(cache[comp, layer], tensor), (comp, layer)
    assert torch.equal(cache.output.logits, out.logits)
    assert cache.components == comps and cache.layers("mlp_output") == [0, 2]


def test_gpt2_module_path_and_single_layer():
    model = make_gpt2()
    ref, _ = plain_hooks(
        model,
        [(("mlp_output", 1), model.transformer.h[1].mlp, "output"),
         (("transformer.h.0.attn.c_proj.output", None), model.transformer.h[0].attn.c_proj, "output")],
    )  # fmt: skip
    cache = pv.collect(
        model,
        inputs_of(model),
        components=["mlp_output", "transformer.h.0.attn.c_proj.output"],
        layers=1,
    )
    assert set(cache) == set(ref)
    for key, tensor in ref.items():
        assert torch.equal(cache[key].detach(), tensor)


def test_model_state_is_left_alone_and_hooks_removed():
    model = make_gpt2()
    model.train()
    model.transformer.h[0].eval()  # mixed modes survive too
    model.lm_head.weight.requires_grad_(True)
    model.transformer.wte.weight.requires_grad_(False)
    before = [(m.training, sum(len(d) for d in (m._forward_hooks, m._forward_pre_hooks)))
              for m in model.modules()]  # fmt: skip
    grads = [p.requires_grad for p in model.parameters()]
    cache = pv.collect(model.eval().train(), inputs_of(model), layers=0)  # train mode: dropout 0
    model.transformer.h[0].eval()
    after = [(m.training, sum(len(d) for d in (m._forward_hooks, m._forward_pre_hooks)))
             for m in model.modules()]  # fmt: skip
    assert after == before and [p.requires_grad for p in model.parameters()] == grads
    assert cache["block_output", 0].requires_grad  # ambient grad mode: a graph is kept


def test_bad_requests_name_the_choices():
    model = make_gpt2()
    with pytest.raises(pv.ConfigError, match="mlp_output"):
        pv.collect(model, inputs_of(model), components="mlp_outptu")
    with pytest.raises(pv.PyveneError):
        pv.collect(model, inputs_of(model), layers=[7])
    cache = pv.collect(model, inputs_of(model), layers=[0])
    with pytest.raises(KeyError, match="block_output"):
        cache["block_output", 5]
    assert "ActivationCache(('block_output', 0): (2, 6, 24))" == repr(cache)
