"""pv.type_to_module_mapping / pv.type_to_dimension_mapping (SPEC B §5.1-5.2): a model class
with no family table registered through them behaves like a table-backed one; every result is
checked against a plain torch hook or a manual computation. Here: a tiny T5 and dimension
proposals (fused QKV: test_legacy_mapping_fused.py; generated entries: test_legacy_generated.py)."""

from __future__ import annotations

import pytest
import torch
from conftest import ids
from legacy_hooks import read, run_patched
from torch import nn
from transformers import (
    PretrainedConfig,
    T5Config,
    T5ForConditionalGeneration,
)

import pyvene as pv
from pyvene.models.constants import (
    CONST_INPUT_HOOK,
    CONST_OUTPUT_HOOK,
)
from pyvene.models.legacy_mapping import evaluate_proposal
from pyvene.models.modeling_utils import get_dimension_by_component

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
