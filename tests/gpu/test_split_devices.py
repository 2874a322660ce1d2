"""On a GPU machine: a model whose layers are split across cuda:0 and cpu (and across two GPUs
when present) by accelerate's ``dispatch_model`` gives the single-device results: patching,
a trainable intervention's forward and gradients, steering in generate, sweeps; interventions
and patches live on their own layer's device. Skipped without CUDA."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import ids, make_llama

import pyvene as pv
from pyvene.analysis import patching_sweep

if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
accelerate = pytest.importorskip("accelerate")

TOL = {"rtol": 1e-4, "atol": 1e-5}  # cuda vs cpu kernels differ in the last bits


def _maps():
    maps = {"cuda0+cpu": (0, 0, "cpu", "cpu")}
    if torch.cuda.device_count() > 1:
        maps["cuda0+cuda1"] = (0, 0, 1, 1)
    return maps


@pytest.fixture(params=sorted(_maps()))
def split(request):
    emb, l0, l1, l2 = _maps()[request.param]
    plain = make_llama(seed=21)
    device_map = {
        "model.embed_tokens": emb, "model.rotary_emb": emb, "model.layers.0": l0,
        "model.layers.1": l1, "model.layers.2": l2, "model.norm": l2, "lm_head": l2,
    }  # fmt: skip
    model = accelerate.dispatch_model(copy.deepcopy(plain), device_map=device_map)
    return plain, model, device_map


def _das(model):
    reps = [{"layer": k, "component": "block_output", "low_rank_dimension": 2} for k in (0, 2)]
    config = pv.IntervenableConfig(reps, intervention_types=pv.LowRankRotatedSpaceIntervention)
    torch.manual_seed(0)
    return pv.IntervenableModel(config, model)


def _device(d) -> torch.device:
    return torch.device(f"cuda:{d}" if isinstance(d, int) else d)


def test_split_model_matches_single_device(split):
    plain, model, device_map = split
    base, source = ids(2, 6, 1), ids(2, 6, 2)
    loc = {"sources->base": 3}
    results = []
    for m in (plain, model):
        das = _das(m)
        keys = das.sorted_keys
        want_dev = {keys[0]: device_map["model.layers.0"], keys[1]: device_map["model.layers.2"]}
        if m is model:
            for key, d in want_dev.items():
                assert {p.device for p in das.interventions[key].parameters()} == {_device(d)}
        out = das(base, [source], {"sources->base": ([[[3]], [[3]]], [[[3]], [[3]]])})[1]
        out.logits.float().square().mean().backward()
        grads = [p.grad.detach().cpu() for p in das.get_trainable_parameters()]
        patch = pv.IntervenableModel({"layer": 1, "component": "mlp_output"}, m)
        steer = pv.IntervenableModel(
            {"layer": 2, "component": "block_output", "intervention_type": pv.AdditionIntervention},
            m,
        )
        with torch.no_grad():
            patched = patch(base, [source], loc)[1].logits.cpu()
            gen = steer.generate(
                ids(1, 3, 5), source_representations=torch.ones(32), intervene_on_prompt=True,
                max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0,
            )[1].cpu()  # fmt: skip
            sweep = patching_sweep(
                m, base, source, lambda x: x[:, 7], ["block_output", "mlp_output"],
                window=1, progress=False,
            )  # fmt: skip
        results.append((out.logits.detach().cpu(), grads, patched, gen, sweep))
    (a, ga, pa, gena, sa), (b, gb, pb, genb, sb) = results
    torch.testing.assert_close(b, a, **TOL)
    for x, y in zip(gb, ga):
        torch.testing.assert_close(x, y, **TOL)
    torch.testing.assert_close(pb, pa, **TOL)
    assert torch.equal(genb, gena)
    for kind in ("block_output", "mlp_output"):
        torch.testing.assert_close(sb[kind].cpu(), sa[kind].cpu(), **TOL)
