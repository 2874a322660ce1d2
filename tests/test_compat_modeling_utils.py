"""The original's ``pyvene.models.modeling_utils`` (SPEC B §1.2): gather / scatter of neurons,
module hooks and dimensions, do_intervention, each against manual slicing or a plain hook."""

from __future__ import annotations

import pytest
import torch
from conftest import make_gpt2
from transformers import GPT2LMHeadModel

import pyvene as pv

# --------------------------------------------------------------------------- modeling_utils


def test_gather_neurons_against_slicing():
    from pyvene.models.modeling_utils import UnsupportedUnitError, gather_neurons

    x = torch.rand(5, 3, 2)
    torch.testing.assert_close(gather_neurons(x, "pos", [[0, 1]] * 5), x[:, 0:2])
    torch.testing.assert_close(gather_neurons(x, "h", [[2, 0]] * 5), x[:, [2, 0]])
    per_example = [[2], [0], [1], [1], [0]]
    want = torch.stack([x[b, per_example[b]] for b in range(5)])
    torch.testing.assert_close(gather_neurons(x, "pos", per_example), want)
    heads = torch.rand(5, 4, 3, 2)  # (B, H, S, Dh)
    got = gather_neurons(heads, "h.pos", ([[1, 2]] * 5, [[0, 1]] * 5))
    torch.testing.assert_close(got, heads[:, 1:3, 0:2])
    assert gather_neurons(x, "t", None) is x
    with pytest.raises(AssertionError, match="Unit = dim"):
        gather_neurons(x, "dim", [[0]] * 5)
    assert issubclass(UnsupportedUnitError, pv.PyveneError)


def _gpt2_config():
    from transformers import GPT2Config

    return GPT2Config(n_embd=6, n_head=3, n_layer=4, vocab_size=10, n_positions=20)


def test_scatter_neurons_positions_in_place():
    from pyvene.models.modeling_utils import scatter_neurons

    x = torch.rand(2, 5, 6)
    value = torch.rand(2, 2, 6)
    golden = x.clone()
    golden[:, 1:3] = value
    out = scatter_neurons(x, value, "attention_input", "pos", [[1, 2]] * 2, GPT2LMHeadModel,
                          _gpt2_config(), False)  # fmt: skip
    assert out is x
    torch.testing.assert_close(out, golden)
    y = torch.rand(2, 5, 6)
    golden = y.clone()
    golden[1, 4] = value[1, 0]
    scatter_neurons(y, value[:, :1], "block_output", "pos", [None, [4]], GPT2LMHeadModel,
                    _gpt2_config(), False)  # fmt: skip
    torch.testing.assert_close(y, golden)


def test_scatter_neurons_heads_of_a_fused_qkv():
    from pyvene.models.modeling_utils import scatter_neurons

    x = torch.arange(180).view(2, 5, 18)
    value = torch.arange(180, 196).view(2, 2, 2, 2)  # (B, heads, positions, Dh)
    golden = x.clone().view(2, 5, 3, 3, 2)  # (B, S, qkv, H, Dh)
    golden[:, 0:2, 2, 1:3] = value.permute(0, 2, 1, 3)
    out = scatter_neurons(x, value, "head_value_output", "h.pos", ([[1, 2]] * 2, [[0, 1]] * 2),
                          GPT2LMHeadModel, _gpt2_config(), False)  # fmt: skip
    torch.testing.assert_close(out.view(2, 5, 3, 3, 2), golden)


def test_scatter_then_gather_round_trip_on_attention_heads():
    from pyvene.models.modeling_utils import gather_neurons, output_to_subcomponent, scatter_neurons

    src = torch.rand(2, 3, 5, 2)  # (B, H, S, Dh)
    picked = gather_neurons(src, "h.pos", ([[1, 2]] * 2, [[0, 1]] * 2))
    x = torch.rand(2, 5, 6)
    golden = x.clone().view(2, 5, 3, 2)
    golden[:, 0:2, 1:3] = picked.permute(0, 2, 1, 3)
    scatter_neurons(x, picked, "head_attention_value_output", "h.pos",
                    ([[1, 2]] * 2, [[0, 1]] * 2), GPT2LMHeadModel, _gpt2_config(), False)  # fmt: skip
    torch.testing.assert_close(x.view(2, 5, 3, 2), golden)
    sub = output_to_subcomponent(x, "head_attention_value_output", GPT2LMHeadModel,
                                 _gpt2_config())  # fmt: skip
    torch.testing.assert_close(sub, x.view(2, 5, 3, 2).permute(0, 2, 1, 3))
    qkv = torch.rand(2, 5, 18)
    sub = output_to_subcomponent(qkv, "query_output", GPT2LMHeadModel, _gpt2_config())
    torch.testing.assert_close(sub, qkv[..., :6])
    assert output_to_subcomponent(qkv, "h[0].attn.output", GPT2LMHeadModel, _gpt2_config()) is qkv


def test_getattr_module_hook_and_dimension():
    from pyvene.models.modeling_utils import (
        get_dimension_by_component,
        get_module_hook,
        getattr_for_torch_module,
    )

    model = make_gpt2()
    assert getattr_for_torch_module(model, "transformer.h[1].mlp") is model.transformer.h[1].mlp
    assert getattr_for_torch_module(model.config, "n_embd") == model.config.n_embd
    rep = pv.RepresentationConfig(1, "attention_value_output")
    hook = get_module_hook(model, rep)
    assert hook.__self__ is model.transformer.h[1].attn.c_proj
    assert hook.__name__ == "register_forward_pre_hook"
    assert get_dimension_by_component(GPT2LMHeadModel, model.config, "block_output") == 24


def test_do_intervention_flattens_distributed_units():
    from pyvene.models.modeling_utils import do_intervention

    base, source = torch.rand(2, 3, 4), torch.rand(2, 3, 4)
    torch.testing.assert_close(
        do_intervention(base, source, lambda b, s: b + s, None), base + source
    )
    seen = {}

    class Record(pv.DistributedRepresentationIntervention, pv.Intervention):
        def forward(self, b, s=None, subspaces=None, **kwargs):
            seen["shape"] = tuple(b.shape)
            return s

    out = do_intervention(base, source, Record(embed_dim=12), None)
    assert seen["shape"] == (2, 12)
    torch.testing.assert_close(out, source)
    van = do_intervention(base, source, pv.VanillaIntervention(embed_dim=12), None)
    torch.testing.assert_close(van, source)
