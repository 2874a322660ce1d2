"""Generated type_to_* entries of the classes that have family tables (SPEC B §5.1-5.2): they
read back, and overwriting or copying one changes what the component resolves to, checked
against a plain torch hook."""

from __future__ import annotations

import torch
from conftest import ids, make_gpt2, make_llama
from legacy_hooks import read
from torch import nn
from transformers import (
    GPT2LMHeadModel,
    LlamaForCausalLM,
)

import pyvene as pv
from pyvene.models.constants import (
    CONST_INPUT_HOOK,
    CONST_OUTPUT_HOOK,
)
from pyvene.models.modeling_utils import get_dimension_by_component, output_to_subcomponent

# --------------------------------------------------------------------------- covered classes


def site_module(pvm) -> str:
    """Module path of the first intervention's site (from the public describe())."""
    return pvm.describe()["interventions"][pvm.sorted_keys[0]]["module"]


def test_generated_entries_of_covered_classes():
    gpt2_entry = pv.type_to_module_mapping[GPT2LMHeadModel]
    assert gpt2_entry["block_output"] == ("transformer.h[%s]", CONST_OUTPUT_HOOK)
    assert gpt2_entry["attention_value_output"] == ("transformer.h[%s].attn.c_proj",
                                                    CONST_INPUT_HOOK)  # fmt: skip
    llama_entry = pv.type_to_module_mapping[LlamaForCausalLM]
    assert llama_entry["mlp_activation"][:2] == ("model.layers[%s].mlp.act_fn", CONST_OUTPUT_HOOK)
    gpt2 = make_gpt2()
    c = gpt2.config
    assert get_dimension_by_component(GPT2LMHeadModel, c, "mlp_activation") == 4 * c.n_embd
    assert get_dimension_by_component(GPT2LMHeadModel, c, "head_query_output") == c.n_embd // 4
    assert nn.Linear not in pv.type_to_module_mapping


def test_generated_llama_kv_heads_use_key_value_heads():
    llama = make_llama()
    c = llama.config
    raw = read(llama, llama.model.layers[0].self_attn.k_proj, "output", ids(1, 5, 0))
    got = output_to_subcomponent(raw, "head_key_output", LlamaForCausalLM, c)
    expect = raw.view(1, 5, c.num_key_value_heads, c.head_dim).permute(0, 2, 1, 3)
    torch.testing.assert_close(got, expect, rtol=0, atol=0)


def test_overwriting_a_generated_entry_redirects_the_component():
    model = make_gpt2()
    table = pv.type_to_module_mapping[GPT2LMHeadModel]
    try:
        table["block_output"] = ("transformer.h[%s].mlp", CONST_OUTPUT_HOOK)
        inputs = ids(1, 5, 1)
        expect = read(model, model.transformer.h[1].mlp, "output", inputs)
        pvm = pv.IntervenableModel(
            {"layer": 1, "component": "block_output", "intervention_type": pv.CollectIntervention},
            model,
        )
        (_, collected), _ = pvm(inputs)
        torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)
    finally:
        del pv.type_to_module_mapping[GPT2LMHeadModel]
    pvm = pv.IntervenableModel({"layer": 1, "component": "block_output"}, model)
    assert model.get_submodule(site_module(pvm)) is model.transformer.h[1]


def test_dimension_only_override_changes_the_width():
    model = make_gpt2()
    try:
        pv.type_to_dimension_mapping[GPT2LMHeadModel]["mlp_output"] = ("n_embd/2",)
        pvm = pv.IntervenableModel({"layer": 0, "component": "mlp_output"}, model)
        assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == model.config.n_embd // 2
        assert model.get_submodule(site_module(pvm)) is model.transformer.h[0].mlp
    finally:
        del pv.type_to_dimension_mapping[GPT2LMHeadModel]
    pvm = pv.IntervenableModel({"layer": 0, "component": "mlp_output"}, model)
    assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == model.config.n_embd


def test_generated_entries_copied_to_a_new_model_type():
    """A GPT-2 variant whose config type has no table works by copying the GPT-2 entries."""

    class MyConfig(type(make_gpt2().config)):
        model_type = "my_gpt2_variant"

    class MyGPT2(GPT2LMHeadModel):
        config_class = MyConfig

    torch.manual_seed(0)
    cfg = MyConfig(n_embd=24, n_head=4, n_layer=2, vocab_size=50, n_positions=32)
    model = MyGPT2(cfg).eval()
    assert model.config.model_type not in pv.FAMILIES
    pv.type_to_module_mapping[MyGPT2] = dict(pv.type_to_module_mapping[GPT2LMHeadModel])
    pv.type_to_dimension_mapping[MyGPT2] = dict(pv.type_to_dimension_mapping[GPT2LMHeadModel])
    try:
        inputs = ids(2, 5, 2)
        raw = read(model, model.transformer.h[1].attn.c_attn, "output", inputs)
        expect = raw[..., 24:48].reshape(2, 5, 4, 6).permute(0, 2, 1, 3)
        pvm = pv.IntervenableModel(
            {"layer": 1, "component": "head_key_output", "unit": "h.pos",
             "intervention_type": pv.CollectIntervention}, model,
        )  # fmt: skip
        (_, collected), _ = pvm(inputs)
        torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)
        assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == 6
    finally:
        del pv.type_to_module_mapping[MyGPT2]
        del pv.type_to_dimension_mapping[MyGPT2]


def test_dimension_only_override_keeps_the_table_site():
    """Only the width changes: GPT-NeoX's interleaved per-head Q slice is kept exactly."""
    from transformers import GPTNeoXForCausalLM

    _, _, model = pv.create_gpt_neox()
    c = model.config
    inputs = ids(2, 5, 3)
    raw = read(model, model.gpt_neox.layers[1].attention.query_key_value, "output", inputs)
    head_dim = c.hidden_size // c.num_attention_heads
    expect = raw.unflatten(-1, (c.num_attention_heads, 3, head_dim))[..., 0, :].flatten(-2)
    got = output_to_subcomponent(raw, "query_output", GPTNeoXForCausalLM, c)
    torch.testing.assert_close(got, expect, rtol=0, atol=0)
    try:
        pv.type_to_dimension_mapping[GPTNeoXForCausalLM]["query_output"] = ("hidden_size",)
        pvm = pv.IntervenableModel(
            {"layer": 1, "component": "query_output", "intervention_type": pv.CollectIntervention},
            model,
        )
        (_, collected), _ = pvm(inputs)
        torch.testing.assert_close(collected[0].reshape(2, 5, -1), expect, rtol=0, atol=0)
    finally:
        del pv.type_to_dimension_mapping[GPTNeoXForCausalLM]
