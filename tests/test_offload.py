"""Offloaded models (accelerate ``cpu_offload`` and disk offload: every weight on ``meta``,
streamed in by hooks) give bit-exact results against the plain model: patching, Collect,
steering in generate, a DAS step, save / load, sweeps and causal tracing."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_llama, offloaded_llama

import pyvene as pv
from pyvene.analysis import patching_sweep
from pyvene.analysis.tracing import causal_trace, corrupt_embeddings

accelerate = pytest.importorskip("accelerate")


@pytest.fixture(params=["cpu", "disk"])
def pair(request, tmp_path):
    return make_llama(seed=11), offloaded_llama(request.param, tmp_path)


def _das(model):
    rep = {"layer": 1, "component": "block_output", "low_rank_dimension": 4}
    config = pv.IntervenableConfig(
        representations=[rep], intervention_types=pv.LowRankRotatedSpaceIntervention
    )
    torch.manual_seed(0)
    return pv.IntervenableModel(config, model)


def test_calls_generate_and_das_step_are_bit_exact(pair):
    plain, off = pair
    base, source = ids(2, 6, 1), ids(2, 6, 2)
    loc = {"sources->base": ([[[1, 4]]], [[[2, 5]]])}
    outs = []
    for model in (plain, off):
        patch = pv.IntervenableModel({"layer": 1, "component": "mlp_output"}, model)
        collect = pv.IntervenableModel(
            {"layer": 2, "component": "block_output", "intervention_type": pv.CollectIntervention},
            model,
        )
        steer = pv.IntervenableModel(
            {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention},
            model,
        )
        das = _das(model)
        assert all(p.device.type == "cpu" for p in das.get_trainable_parameters())
        loss = das(base, [source], {"sources->base": 4})[1].logits.square().mean()
        loss.backward()
        with torch.no_grad():
            outs.append(
                (
                    patch(base, [source], loc)[1].logits,
                    collect(base)[0][1][0],
                    steer.generate(
                        ids(1, 3, 5),
                        source_representations=torch.ones(32),
                        intervene_on_prompt=True,
                        max_new_tokens=4,
                        min_new_tokens=4,
                        do_sample=False,
                        pad_token_id=0,
                    )[1],  # fmt: skip
                    loss,
                    [p.grad.clone() for p in das.get_trainable_parameters()],
                )
            )
    (a_patch, a_col, a_gen, a_loss, a_grads), (b_patch, b_col, b_gen, b_loss, b_grads) = outs
    assert torch.equal(a_patch, b_patch) and torch.equal(a_col, b_col)
    assert torch.equal(a_gen, b_gen) and torch.equal(a_loss, b_loss)
    assert all(torch.equal(x, y) for x, y in zip(a_grads, b_grads))
    with torch.no_grad():
        assert not torch.equal(a_patch, plain(**base).logits)


def test_load_and_load_intervention_place_on_the_sites_device(pair, tmp_path):
    plain, off = pair
    trained = _das(plain)
    with torch.no_grad():
        for p in trained.get_trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    trained.save(tmp_path / "full")
    trained.save_intervention(tmp_path / "weights")
    base, source = ids(1, 5, 3), ids(1, 5, 4)
    with torch.no_grad():
        want = trained(base, [source])[1].logits
        loaded = pv.IntervenableModel.load(tmp_path / "full", model=off)
        fresh = _das(off)
        fresh.load_intervention(tmp_path / "weights")
        for pvm in (loaded, fresh):
            assert all(p.device.type == "cpu" for p in pvm.get_trainable_parameters())
            assert torch.equal(pvm(base, [source])[1].logits, want)


def test_set_device_on_a_dispatched_model_is_refused(pair):
    _, off = pair
    pvm = _das(off)
    with pytest.raises(pv.DeviceError, match="dispatched by accelerate"):
        pvm.set_device("cpu")
    pvm.set_device("cpu", set_model=False)  # interventions follow their sites
    assert pvm.get_device() == torch.device("cpu")


class WordTokenizer:
    """Word-level stand-in for a HF tokenizer (ids 1..n, no offsets)."""

    words = "the tower big is in city of paris rome a".split()

    def __call__(self, text, add_special_tokens=True, return_offsets_mapping=False):
        if return_offsets_mapping:
            raise NotImplementedError
        return {"input_ids": [self.words.index(w) + 1 for w in text.split()]}

    def convert_ids_to_tokens(self, ids):
        return [self.words[i - 1] for i in ids]


def test_sweep_noise_and_causal_trace_are_bit_exact(pair):
    plain, off = pair
    prompt = torch.tensor([[3, 8, 11, 4, 9, 21]])
    results = []
    for model in (plain, off):
        level = pv.embedding_noise_level(model)
        noised = corrupt_embeddings(model, prompt, (1, 3), samples=2, noise_level=0.5, seed=7)
        sweep = patching_sweep(
            model, {"inputs_embeds": noised}, {"input_ids": prompt}, lambda x: x[:, 7],
            ["block_output", "mlp_output"], window=2, progress=False,
        )  # fmt: skip
        trace = causal_trace(
            model, WordTokenizer(), "the big tower is in the city of", "paris", "big tower",
            samples=2, window=2, progress=False,
        )  # fmt: skip
        results.append((level, noised, sweep["block_output"], sweep["mlp_output"], trace))
    a, b = results
    assert a[0] == b[0]
    weight = plain.get_input_embeddings().weight
    assert a[0] == pytest.approx(3 * float(weight.double().std()), rel=1e-12)
    for x, y in zip(a[1:4], b[1:4]):
        assert torch.equal(x, y)
    for kind in a[4].grids:
        assert torch.equal(a[4].grids[kind], b[4].grids[kind])
