"""Every component of the GPT-2 and llama tables against plain torch hooks on the HF modules:
Collect equals what a hook reads; a Vanilla patch equals a hook-based manual patch."""

from __future__ import annotations

import pytest
import torch
from conftest import hooked, ids

import pyvene as pv

# component -> (module getter, side, part index of 3 or None, head kind or None)
GPT2_REF = {
    "block_input": (lambda m, i: m.transformer.h[i], "input", None, None),
    "block_output": (lambda m, i: m.transformer.h[i], "output", None, None),
    "mlp_activation": (lambda m, i: m.transformer.h[i].mlp.act, "output", None, None),
    "mlp_output": (lambda m, i: m.transformer.h[i].mlp, "output", None, None),
    "mlp_input": (lambda m, i: m.transformer.h[i].ln_2, "output", None, None),
    "attention_value_output": (lambda m, i: m.transformer.h[i].attn.c_proj, "input", None, None),
    "head_attention_value_output": (lambda m, i: m.transformer.h[i].attn.c_proj, "input", None, "q"),
    "attention_output": (lambda m, i: m.transformer.h[i].attn, "output", None, None),
    "attention_input": (lambda m, i: m.transformer.h[i].ln_1, "output", None, None),
    "query_output": (lambda m, i: m.transformer.h[i].attn.c_attn, "output", 0, None),
    "key_output": (lambda m, i: m.transformer.h[i].attn.c_attn, "output", 1, None),
    "value_output": (lambda m, i: m.transformer.h[i].attn.c_attn, "output", 2, None),
    "head_query_output": (lambda m, i: m.transformer.h[i].attn.c_attn, "output", 0, "q"),
    "head_key_output": (lambda m, i: m.transformer.h[i].attn.c_attn, "output", 1, "q"),
    "head_value_output": (lambda m, i: m.transformer.h[i].attn.c_attn, "output", 2, "q"),
}  # fmt: skip

LLAMA_REF = {
    "block_input": (lambda m, i: m.model.layers[i], "input", None, None),
    "block_output": (lambda m, i: m.model.layers[i], "output", None, None),
    "mlp_activation": (lambda m, i: m.model.layers[i].mlp.act_fn, "output", None, None),
    "mlp_output": (lambda m, i: m.model.layers[i].mlp, "output", None, None),
    "mlp_input": (lambda m, i: m.model.layers[i].post_attention_layernorm, "output", None, None),
    "attention_value_output": (lambda m, i: m.model.layers[i].self_attn.o_proj, "input", None, None),
    "head_attention_value_output": (lambda m, i: m.model.layers[i].self_attn.o_proj, "input", None, "q"),
    "attention_output": (lambda m, i: m.model.layers[i].self_attn, "output", None, None),
    "attention_input": (lambda m, i: m.model.layers[i].input_layernorm, "output", None, None),
    "query_output": (lambda m, i: m.model.layers[i].self_attn.q_proj, "output", None, None),
    "key_output": (lambda m, i: m.model.layers[i].self_attn.k_proj, "output", None, None),
    "value_output": (lambda m, i: m.model.layers[i].self_attn.v_proj, "output", None, None),
    "head_query_output": (lambda m, i: m.model.layers[i].self_attn.q_proj, "output", None, "q"),
    "head_key_output": (lambda m, i: m.model.layers[i].self_attn.k_proj, "output", None, "kv"),
    "head_value_output": (lambda m, i: m.model.layers[i].self_attn.v_proj, "output", None, "kv"),
}  # fmt: skip


def n_heads(model, kind):
    c = model.config
    return c.num_key_value_heads if kind == "kv" else c.num_attention_heads


def ref_view(raw, model, part, head):
    """Independent reimplementation of the split: third of c_attn, then (B, S, H, Dh)."""
    if part is not None:
        raw = raw.chunk(3, dim=-1)[part]
    if head is not None:
        raw = raw.view(raw.shape[0], raw.shape[1], n_heads(model, head), -1)
    return raw


def read(model, ref, layer, inputs):
    getter, side, part, head = ref
    store = {}
    handle = hooked(getter(model, layer), side, lambda x: store.setdefault("x", x.detach().clone()))
    try:
        model(**inputs)
    finally:
        handle.remove()
    return store["x"]


def cases():
    for name in ("gpt2", "llama", "llama_wide_heads"):
        table = GPT2_REF if name == "gpt2" else LLAMA_REF
        for comp in table:
            yield name, comp


@pytest.mark.parametrize("model_name,component", list(cases()))
def test_collect_equals_plain_hook(request, model_name, component):
    model = request.getfixturevalue(model_name)
    table = GPT2_REF if model_name == "gpt2" else LLAMA_REF
    ref = table[component]
    layer = 1
    inputs = ids(2, 7, seed=1)
    raw = read(model, ref, layer, inputs)
    view = ref_view(raw, model, ref[2], ref[3])
    is_head = ref[3] is not None
    unit = "h.pos" if is_head else "pos"
    pvm = pv.IntervenableModel(
        {"layer": layer, "component": component, "unit": unit,
         "intervention_type": pv.CollectIntervention}, model,
    )  # fmt: skip
    # whole tensor (no locations): (B, S, D) or (B, H, S, Dh)
    (_, whole), _ = pvm(inputs)
    expect = view.permute(0, 2, 1, 3) if is_head else view
    torch.testing.assert_close(whole[0], expect, rtol=0, atol=0)
    # chosen units, different per example
    if is_head:
        heads, pos = [[1, 0], [0, 1]], [[2, 5], [6, 0]]
        (_, got), _ = pvm(inputs, unit_locations={"base": ([[]], [[heads, pos]])[1]})
        for b in range(2):
            want = view[b][pos[b]][:, heads[b]].permute(1, 0, 2)
            torch.testing.assert_close(got[0][b], want, rtol=0, atol=0)
    else:
        pos = [[1, 4], [6, 0]]
        (_, got), _ = pvm(inputs, unit_locations={"base": ([[]], [pos])[1]})
        for b in range(2):
            torch.testing.assert_close(got[0][b], view[b, pos[b]], rtol=0, atol=0)
    assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == expect.shape[-1]


@pytest.mark.parametrize("model_name,component", list(cases()))
@pytest.mark.parametrize("batch_sources", [True, False])
def test_vanilla_patch_equals_manual_hook_patch(request, model_name, component, batch_sources):
    model = request.getfixturevalue(model_name)
    table = GPT2_REF if model_name == "gpt2" else LLAMA_REF
    ref = table[component]
    getter, side, part, head = ref
    layer = 1
    base, source = ids(2, 7, seed=2), ids(2, 7, seed=3)
    src_raw = read(model, ref, layer, source)
    src_view = ref_view(src_raw, model, part, head)
    if head is not None:
        heads, bpos, spos = [[1], [0]], [[2, 5], [6, 1]], [[0, 3], [4, 6]]
        locs = {"sources->base": ([[heads, spos]], [[heads, bpos]])}
        unit = "h.pos"
    else:
        heads, bpos, spos = None, [[1, 4], [6, 0]], [[0, 2], [3, 6]]
        locs = {"sources->base": ([spos], [bpos])}
        unit = "pos"

    def patch(x):
        x = x.clone()
        v = ref_view(x, model, part, head)
        for b in range(2):
            for s_p, b_p in zip(spos[b], bpos[b]):
                if head is None:
                    v[b, b_p] = src_view[b, s_p]
                else:
                    for h in heads[b]:
                        v[b, b_p, h] = src_view[b, s_p, h]
        return x

    handle = hooked(getter(model, layer), side, patch)
    try:
        expected = model(**base).logits
    finally:
        handle.remove()
    pvm = pv.IntervenableModel(
        {"layer": layer, "component": component, "unit": unit}, model, batch_sources=batch_sources
    )
    _, out = pvm(base, [source], locs)
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out.logits, model(**base).logits)


@pytest.mark.parametrize("model_name", ["gpt2", "llama"])
def test_heads_unit_patches_all_positions_of_chosen_heads(request, model_name):
    model = request.getfixturevalue(model_name)
    table = GPT2_REF if model_name == "gpt2" else LLAMA_REF
    getter, side, part, head = table["head_attention_value_output"]
    base, source = ids(1, 6, seed=4), ids(1, 6, seed=5)
    src = ref_view(read(model, table["head_attention_value_output"], 2, source), model, part, head)

    def patch(x):
        x = x.clone()
        ref_view(x, model, part, head)[:, :, 2] = src[:, :, 2]
        return x

    handle = hooked(getter(model, 2), side, patch)
    try:
        expected = model(**base).logits
    finally:
        handle.remove()
    pvm = pv.IntervenableModel(
        {"layer": 2, "component": "head_attention_value_output", "unit": "h"}, model
    )
    _, out = pvm(base, [source], {"sources->base": ([[[2]]], [[[2]]])})
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_name", ["gpt2", "llama", "llama_wide_heads"])
def test_full_patch_of_last_block_gives_source_logits(request, model_name):
    model = request.getfixturevalue(model_name)
    last = model.config.num_hidden_layers - 1
    base, source = ids(2, 6, seed=6), ids(2, 6, seed=7)
    pvm = pv.IntervenableModel(
        {"layer": last, "component": "block_output"}, model, batch_sources=False
    )
    _, out = pvm(base, [source])
    torch.testing.assert_close(out.logits, model(**source).logits, rtol=0, atol=0)
    one_pass = pv.IntervenableModel({"layer": last, "component": "block_output"}, model)
    _, out = one_pass(base, [source])
    torch.testing.assert_close(out.logits, model(**source).logits, rtol=1e-5, atol=1e-5)
