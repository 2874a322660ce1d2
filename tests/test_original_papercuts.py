"""What the original's clients and test suite read: the Boundless DAS mask formula, the config
as a transformers PretrainedConfig, create_gpt2(name=, cache_dir=), LocationError as an
IndexError."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from conftest import ids, make_gpt2

import pyvene as pv
from pyvene.serialization import CONFIG_NAME


def original_mask(d: int, beta: float, t: float) -> torch.Tensor:
    """SPEC B §6.3, computed in float64: sigmoid(i/T) * sigmoid((clamp(beta,1e-3,1)*D - i)/T)."""
    i = torch.arange(d, dtype=torch.float64)
    b = min(max(beta, 1e-3), 1.0) * d
    return torch.sigmoid(i / t) * torch.sigmoid((b - i) / t)


@pytest.mark.parametrize(
    "beta,temp", [(0.5, 50.0), (0.3, 1.0), (0.8, 0.05), (2.0, 3.0), (0.0, 2.0)]
)
def test_boundless_default_mask_is_the_originals(beta, temp):
    torch.manual_seed(0)
    d = 12
    iv = pv.BoundlessRotatedSpaceIntervention(embed_dim=d)
    iv.set_intervention_boundaries(beta)
    iv.set_temperature(temp)
    want = original_mask(d, beta, temp)
    torch.testing.assert_close(iv.mask().double(), want, atol=1e-6, rtol=0)
    assert (
        float(iv.mask().detach()[0]) <= 0.5
    )  # the documented quirk: m_0 = sigmoid(0) * ... <= 0.5
    b, s = torch.randn(3, 2, d), torch.randn(3, 2, d)  # batch 3 x 2 units
    r = iv.rotate_layer.weight.detach().double()
    m = want
    out = ((1 - m) * (b.double() @ r) + m * (s.double() @ r)) @ r.T
    torch.testing.assert_close(iv(b, s).double(), out, atol=1e-5, rtol=0)


def test_boundless_centred_mask_is_an_option_saved_with_the_intervention(tmp_path):
    gpt2 = make_gpt2(seed=5)
    rep = {"layer": 1, "intervention": pv.BoundlessRotatedSpaceIntervention(embed_dim=24, centred_mask=True)}  # fmt: skip
    pvm = pv.IntervenableModel(rep, gpt2)
    iv = pvm.interventions[0]
    iv.set_temperature(0.7)
    i = torch.arange(24, dtype=torch.float64) + 0.5
    want = torch.sigmoid(i / 0.7) * torch.sigmoid((0.5 * 24 - i) / 0.7)
    torch.testing.assert_close(iv.mask().double(), want, atol=1e-6, rtol=0)
    pvm.save(tmp_path / "b")
    data = json.loads((tmp_path / "b" / CONFIG_NAME).read_text())
    assert data["interventions"][0]["kwargs"] == {"centred_mask": True}
    loaded = pv.IntervenableModel.load(tmp_path / "b", gpt2)
    assert loaded.interventions[0].centred_mask is True
    torch.testing.assert_close(loaded.interventions[0].mask(), iv.mask())


class ReftLikeConfig(pv.IntervenableConfig):  # pyreft's ReftConfig
    def __init__(self, **kwargs):
        super().__init__(**kwargs)


def test_config_is_a_pretrained_config_with_our_json(tmp_path):
    cfg = ReftLikeConfig(representations={"layer": 2, "component": "block_output"}, mode="serial")
    assert isinstance(cfg, transformers.PretrainedConfig)
    assert cfg.get_text_config() is cfg and cfg.return_dict is True
    cfg.eos_token_id = 7  # what Trainer's align_special_tokens writes
    data = cfg.to_dict()
    assert data["mode"] == "serial" and data["representations"][0]["layer"] == 2
    assert json.loads(cfg.to_json_string()) == data
    cfg.save_pretrained(tmp_path / "cfg")
    assert json.loads((tmp_path / "cfg" / "config.json").read_text())["representations"][0]["layer"] == 2  # fmt: skip
    again = pv.IntervenableConfig.from_dict(data)
    assert again.representations == cfg.representations and again.mode == "serial"


def test_create_gpt2_accepts_name_and_cache_dir_and_never_downloads(tmp_path):
    _, _, model = pv.create_gpt2()
    model.save_pretrained(tmp_path / "local")
    _, _, again = pv.create_gpt2(name=str(tmp_path / "local"), cache_dir=str(tmp_path / "cache"))
    x = ids(1, 5, 0)["input_ids"]
    torch.testing.assert_close(again(x).last_hidden_state, model(x).last_hidden_state)
    with pytest.raises(FileNotFoundError, match="never download"):
        pv.create_gpt2(name="gpt2", cache_dir=str(tmp_path / "empty_cache"))
    with pytest.raises(FileNotFoundError, match="never download"):
        pv.create_llama(name="sharpbai/alpaca-7b-merged", cache_dir=str(tmp_path / "c"))


def test_location_error_is_also_an_index_error():
    gpt2 = make_gpt2(seed=6)
    pvm = pv.IntervenableModel({"layer": 1, "intervention_type": pv.VanillaIntervention}, gpt2)
    base, src = ids(1, 5, 0), ids(1, 5, 1)
    with pytest.raises(IndexError):  # how the original's tests catch an out-of-range unit
        pvm(base, [src], unit_locations={"sources->base": 99})
    assert issubclass(pv.LocationError, IndexError) and issubclass(pv.LocationError, ValueError)


@pytest.mark.parametrize("partition", [None, [[0, 2], [2, 4], [4, 6]]])
def test_use_fast_takes_the_first_examples_subspaces_and_ignores_the_rest(partition):
    """The original's fast path: an intervention built with use_fast=True applies the first
    per-example subspace list to every example; extra entries (even more than the batch) are
    not read. Checked against index assignment by hand."""
    base, source = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    subspaces = [[1, 0], [0, 1], [1, 2]]  # three lists for a batch of two
    dims = [1, 0] if partition is None else [2, 3, 0, 1]  # order kept (collect)
    want = base.clone()
    want[..., dims] = source[..., dims]
    fast = pv.VanillaIntervention(subspace_partition=partition, use_fast=True)
    torch.testing.assert_close(fast(base, source, subspaces=subspaces), want)
    torch.testing.assert_close(
        pv.CollectIntervention(subspace_partition=partition, use_fast=True)(
            base, None, subspaces=subspaces
        ),
        base[..., dims],
    )
    with pytest.raises(pv.LocationError, match="3 per-example entries for a batch of 2"):
        pv.VanillaIntervention(subspace_partition=partition)(base, source, subspaces=subspaces)
