"""pv.type_to_module_mapping on a model with a fused QKV output (SPEC B §5.1): split_three and
head splits from registry params select the same slices as a manual view."""

from __future__ import annotations

import pytest
import torch
from legacy_hooks import read
from torch import nn
from transformers import (
    PretrainedConfig,
)

import pyvene as pv
from pyvene.models.constants import (
    CONST_OUTPUT_HOOK,
    split_head_and_permute,
    split_three,
)
from pyvene.models.modeling_utils import output_to_subcomponent

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
