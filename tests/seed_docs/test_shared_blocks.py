"""Blocks that appear in two seed documents (SKILL.md and api.md): saving / sharing an
intervention and the rank-one DAS quick reference; each runs as written and corrected."""

from __future__ import annotations

import pytest
import torch

import pyvene as pv
from seed_docs.support import (
    TUTORIAL1,
    assert_close,
    capture,
    layers_of,
    pair,
    run_block,
    run_edited,
    steering_vectors,
)


def _saveable(model) -> pv.IntervenableModel:
    """A trainable DAS (weights moved off their init) plus a constant steering vector."""
    torch.manual_seed(1)
    pvm = pv.IntervenableModel(
        [
            {"layer": 4, "component": "block_output", "low_rank_dimension": 2,
             "intervention_type": pv.LowRankRotatedSpaceIntervention},
            {"layer": 9, "component": "attention_value_output",
             "intervention_type": pv.AdditionIntervention,
             "source_representation": steering_vectors()[9]},
        ],
        model,
    )  # fmt: skip
    opt = torch.optim.SGD(pvm.get_trainable_parameters(), lr=0.5)
    for p in pvm.get_trainable_parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    return pvm


def _same_interventions(a: pv.IntervenableModel, b: pv.IntervenableModel, tok) -> None:
    assert list(a.interventions) == list(b.interventions)
    for key in a.interventions:
        sa, sb = a.interventions[key].state_dict(), b.interventions[key].state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    loc = {"sources->base": 5}
    with torch.no_grad():
        out_a, out_b = a(base, [source], loc)[1].logits, b(base, [source], loc)[1].logits
        plain = a.model(**base).logits
    assert torch.equal(out_a, out_b) and not torch.allclose(out_a, plain)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["skill_09", "api_04"])
def test_saving_block_as_written_stops_at_load_of_save_intervention(
    name, smol, tmp_path, monkeypatch
):
    """SPEC A: save_intervention() keeps the original meaning (trainable weights, local), so
    load() of its folder fails with a hint; the local save/load pair before it works."""
    model, tok = smol
    monkeypatch.chdir(tmp_path)
    original = _saveable(model)
    block = run_block(name, allow_error=True, pv=pv, intervenable=original, model=model)
    assert isinstance(block.error, pv.SerializationError)
    assert "use load_intervention" in str(block.error)
    (local,) = block.history["intervenable"]
    _same_interventions(original, local, tok)
    assert {p.name for p in (tmp_path / "my_intervention").iterdir()} == {
        "config.json",
        "interventions.safetensors",
    }
    assert (tmp_path / "username/my-intervention/trainable_interventions.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["skill_09_corrected", "api_04_corrected"])
def test_saving_block_corrected_shares_through_the_hub(name, smol, tmp_path, monkeypatch, fake_hub):
    model, tok = smol
    monkeypatch.chdir(tmp_path)
    original = _saveable(model)
    block = run_block(name, pv=pv, intervenable=original, model=model)
    local, shared = block.history["intervenable"]
    _same_interventions(original, local, tok)
    _same_interventions(original, shared, tok)
    assert {p.name for p in (fake_hub / "username/my-intervention").iterdir()} == {
        "config.json",
        "interventions.safetensors",
    }
    assert not (tmp_path / "username").exists()  # nothing written locally under the repo id


@pytest.mark.slow
@pytest.mark.parametrize("name, names", [("skill_07", {}), ("api_22", {"layer": 8})])
def test_das_rank_one_quick_reference(name, names, smol):
    config = run_block(name, pv=pv, **names).ns["config"]
    model, tok = smol
    das = pv.IntervenableModel(config, model)
    w = das.interventions[0].rotate_layer.weight.detach()
    assert w.shape == (576, 1)
    base, source = pair(tok)
    with torch.no_grad():
        _, out = das(base, [source], {"sources->base": ([[[6]]], [[[6]]])})
    layer = layers_of(model)[8]
    s = capture(model, source, layer)

    def project(x):
        x = x.clone()
        x[:, 6] = x[:, 6] + (s[:, 6] - x[:, 6]) @ w @ w.T
        return x

    assert_close(out.logits, run_edited(model, base, {layer: project}).logits)
