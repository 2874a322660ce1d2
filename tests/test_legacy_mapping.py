"""pv.type_to_module_mapping / pv.type_to_dimension_mapping (SPEC B §5.1-5.2): a model class
with no family table registered through them behaves like a table-backed one; every result is
checked against a plain torch hook or a manual computation."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_gpt2, make_llama
from torch import nn
from transformers import (
    GPT2LMHeadModel,
    LlamaForCausalLM,
    PretrainedConfig,
    T5Config,
    T5ForConditionalGeneration,
)

import pyvene as pv
from pyvene.models.constants import (
    CONST_INPUT_HOOK,
    CONST_OUTPUT_HOOK,
    split_head_and_permute,
    split_three,
)
from pyvene.models.legacy_mapping import evaluate_proposal
from pyvene.models.modeling_utils import get_dimension_by_component, output_to_subcomponent


def first(x):
    return x[0] if isinstance(x, tuple) else x


def read(model, module, side, inputs):
    """What a plain forward (pre-)hook on ``module`` sees."""
    store = {}

    def keep(x):
        store["x"] = x  # returns None: the hooks only read

    if side == "output":
        handle = module.register_forward_hook(lambda m, a, o: keep(first(o)))
    else:
        handle = module.register_forward_pre_hook(lambda m, a: keep(a[0]))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return store["x"].detach().clone()


def run_patched(model, module, side, fn, inputs):
    if side == "output":

        def hook(m, a, o):
            return (fn(o[0]), *o[1:]) if isinstance(o, tuple) else fn(o)

        handle = module.register_forward_hook(hook)
    else:
        handle = module.register_forward_pre_hook(lambda m, a: (fn(a[0]), *a[1:]))
    try:
        with torch.no_grad():
            return model(**inputs)
    finally:
        handle.remove()


# --------------------------------------------------------------------------- tiny T5


@pytest.fixture(scope="module")
def t5():
    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    model = T5ForConditionalGeneration(cfg).eval()
    pv.type_to_module_mapping[type(model)] = {
        "mlp_output": ("encoder.block[%s].layer[1]", CONST_OUTPUT_HOOK),
        "attention_input": ("encoder.block[%s].layer[0]", CONST_INPUT_HOOK),
        "head_attention_value_output": (
            "encoder.block[%s].layer[0].SelfAttention.o", CONST_INPUT_HOOK,
        ),
    }  # fmt: skip
    pv.type_to_dimension_mapping[type(model)] = {
        "mlp_output": ("d_model",),
        "attention_input": ("d_model",),
        "head_attention_value_output": ("d_model/num_heads",),
    }
    yield model
    del pv.type_to_module_mapping[type(model)]
    del pv.type_to_dimension_mapping[type(model)]


def t5_inputs(batch, seed):
    return {**ids(batch, 6, seed), "decoder_input_ids": torch.zeros(batch, 2, dtype=torch.long)}


def test_t5_has_no_table_but_registered_entries_read_back(t5):
    assert t5.config.model_type not in pv.FAMILIES
    assert type(t5) in pv.type_to_module_mapping
    assert pv.type_to_module_mapping[type(t5)]["mlp_output"] == (
        "encoder.block[%s].layer[1]",
        "register_forward_hook",
    )


def test_registered_collect_equals_plain_hook(t5):
    inputs = t5_inputs(2, 1)
    expect = read(t5, t5.encoder.block[1].layer[1], "output", inputs)
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "mlp_output", "intervention_type": pv.CollectIntervention}, t5
    )
    (_, collected), _ = pvm(inputs)
    torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)
    assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == t5.config.d_model


def test_registered_input_hook_collect_equals_pre_hook(t5):
    inputs = t5_inputs(2, 2)
    expect = read(t5, t5.encoder.block[0].layer[0], "input", inputs)
    pvm = pv.IntervenableModel(
        {"layer": 0, "component": "attention_input", "intervention_type": pv.CollectIntervention},
        t5,
    )
    (_, collected), _ = pvm(inputs)
    torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)


def test_registered_vanilla_patch_equals_manual_hook_patch(t5):
    base, source = t5_inputs(2, 3), t5_inputs(2, 4)
    module = t5.encoder.block[1].layer[1]
    src = read(t5, module, "output", source)

    def patch(x):
        x = x.clone()
        x[:, 2] = src[:, 4]
        return x

    expected = run_patched(t5, module, "output", patch, base).logits
    pvm = pv.IntervenableModel({"layer": 1, "component": "mlp_output"}, t5)
    _, out = pvm(base, [source], {"sources->base": ([[[4]] * 2], [[[2]] * 2])})
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out.logits, t5(**base).logits)


def test_registered_head_component_splits_heads(t5):
    """head_* entries without an explicit split use the config's heads (d_model / num_heads
    per head); an h.pos patch moves one head at one position."""
    base, source = t5_inputs(1, 5), t5_inputs(1, 6)
    module = t5.encoder.block[0].layer[0].SelfAttention.o
    heads, dh = t5.config.num_heads, t5.config.d_model // t5.config.num_heads
    src = read(t5, module, "input", source).view(1, 6, heads, dh)

    def patch(x):
        x = x.clone()
        x.view(1, 6, heads, dh)[:, 3, 2] = src[:, 1, 2]
        return x

    expected = run_patched(t5, module, "input", patch, base).logits
    pvm = pv.IntervenableModel(
        {"layer": 0, "component": "head_attention_value_output", "unit": "h.pos"}, t5
    )
    _, out = pvm(base, [source], {"sources->base": ([[[[2]], [[1]]]], [[[[2]], [[3]]]])})
    torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-5)
    assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == dh


def test_unregistered_component_still_raises(t5):
    with pytest.raises(pv.UnknownComponentError, match="registered: attention_input"):
        pv.IntervenableModel({"layer": 0, "component": "block_output"}, t5)


def test_layer_beyond_the_model_raises(t5):
    with pytest.raises(pv.LayerOutOfRangeError, match="layer 5"):
        pv.IntervenableModel({"layer": 5, "component": "mlp_output"}, t5)


def test_module_paths_still_work_for_registered_class(t5):
    inputs = t5_inputs(1, 7)
    expect = read(t5, t5.encoder.block[0].layer[1], "output", inputs)
    pvm = pv.IntervenableModel(
        {"component": "encoder.block[0].layer[1].output",
         "intervention_type": pv.CollectIntervention}, t5,
    )  # fmt: skip
    (_, collected), _ = pvm(inputs)
    torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)


# --------------------------------------------------------------------------- fused QKV model


class FusedConfig(PretrainedConfig):
    model_type = "fused_toy"

    def __init__(self, hidden: int = 8, n_head: int = 2, n_layer: int = 2, **kwargs) -> None:
        self.hidden, self.n_head, self.n_layer = hidden, n_head, n_layer
        super().__init__(**kwargs)


class FusedBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        return x + self.out(torch.tanh(q * k) * v)


class FusedNet(nn.Module):
    def __init__(self, config: FusedConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(FusedBlock(config.hidden) for _ in range(config.n_layer))

    def forward(self, inputs_embeds):
        x = inputs_embeds
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.fixture()
def fused():
    torch.manual_seed(0)
    model = FusedNet(FusedConfig()).eval()
    pv.type_to_module_mapping[FusedNet] = {
        "value_output": ("layers[%s].qkv", CONST_OUTPUT_HOOK, (split_three, 2)),
        "head_key_output": (
            "layers[%s].qkv", CONST_OUTPUT_HOOK, (split_three, 1),
            (split_head_and_permute, "n_head"),
        ),
    }  # fmt: skip
    pv.type_to_dimension_mapping[FusedNet] = {
        "value_output": ("hidden",),
        "head_key_output": ("hidden/n_head",),
        "n_head": ("n_head",),
    }
    yield model
    del pv.type_to_module_mapping[FusedNet]
    del pv.type_to_dimension_mapping[FusedNet]


def test_split_three_selects_the_value_third(fused):
    x = torch.randn(2, 5, 8)
    raw = read(fused, fused.layers[1].qkv, "output", {"inputs_embeds": x})
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "value_output", "intervention_type": pv.CollectIntervention},
        fused,
    )
    (_, collected), _ = pvm({"inputs_embeds": x})
    torch.testing.assert_close(collected[0], raw[..., 16:24], rtol=0, atol=0)


def test_split_three_then_heads_via_registry_param(fused):
    x = torch.randn(2, 5, 8)
    raw = read(fused, fused.layers[0].qkv, "output", {"inputs_embeds": x})
    expect = raw[..., 8:16].reshape(2, 5, 2, 4).permute(0, 2, 1, 3)
    pvm = pv.IntervenableModel(
        {"layer": 0, "component": "head_key_output", "unit": "h.pos",
         "intervention_type": pv.CollectIntervention}, fused,
    )  # fmt: skip
    (_, collected), _ = pvm({"inputs_embeds": x})
    torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)
    got = output_to_subcomponent(raw, "head_key_output", FusedNet, fused.config)
    torch.testing.assert_close(got, expect, rtol=0, atol=0)


def test_bad_entries_raise_clear_errors(fused):
    with pytest.raises(pv.ConfigError, match="keyed by the model class"):
        pv.type_to_module_mapping[fused] = {}
    pv.type_to_module_mapping[FusedNet]["mlp_output"] = ("layers[%s]", "register_hook")
    with pytest.raises(pv.ConfigError, match="hook type 'register_hook' is not supported"):
        pv.IntervenableModel({"layer": 0, "component": "mlp_output"}, fused)
    pv.type_to_module_mapping[FusedNet]["block_output"] = ("layers[%s]", CONST_OUTPUT_HOOK,
                                                           (torch.chunk, 2))  # fmt: skip
    with pytest.raises(pv.ConfigError, match="unsupported split 'chunk'"):
        pv.IntervenableModel({"layer": 0, "component": "block_output"}, fused)


# --------------------------------------------------------------------------- dimension proposals


def test_dimension_proposals_evaluate_left_to_right():
    cfg = PretrainedConfig(n_embd=24, n_head=4, n_inner=None, hidden_size=32,
                           num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    cfg.text_config = PretrainedConfig(hidden_size=12)
    assert evaluate_proposal("n_embd*4", cfg) == 24 * 4
    assert evaluate_proposal("n_embd/n_head", cfg) == 24 // 4
    assert evaluate_proposal("num_key_value_heads*hidden_size/num_attention_heads", cfg) == 16
    assert evaluate_proposal("text_config.hidden_size", cfg) == 12
    assert evaluate_proposal("7", cfg) == 7
    assert evaluate_proposal("n_inner", cfg) is None  # present but None falls through
    with pytest.raises(pv.ConfigError, match="no attribute 'missing'"):
        evaluate_proposal("missing*2", cfg)


def test_first_set_proposal_wins():
    class Dummy(nn.Module):
        pass

    cfg = PretrainedConfig(n_inner=None, n_embd=8)
    pv.type_to_dimension_mapping[Dummy] = {"mlp_activation": ("n_inner", "n_embd*4")}
    try:
        assert get_dimension_by_component(Dummy, cfg, "mlp_activation") == 32
        assert get_dimension_by_component(Dummy, cfg, "block_output") is None
    finally:
        del pv.type_to_dimension_mapping[Dummy]


# --------------------------------------------------------------------------- covered classes


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
    assert pvm.plan.slots[0].site.module is model.transformer.h[1]


def test_dimension_only_override_changes_the_width():
    model = make_gpt2()
    try:
        pv.type_to_dimension_mapping[GPT2LMHeadModel]["mlp_output"] = ("n_embd/2",)
        pvm = pv.IntervenableModel({"layer": 0, "component": "mlp_output"}, model)
        assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == model.config.n_embd // 2
        assert pvm.plan.slots[0].site.module is model.transformer.h[0].mlp
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
