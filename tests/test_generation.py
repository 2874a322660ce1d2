"""IntervenableModel.generate: every mode against an independent greedy loop that recomputes
the whole sequence each step (no KV cache) with a plain torch hook, plus no-op equality with
model.generate, left-padded batches, sampling, collects, per-step selectors and ITI heads."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_gpt2, make_llama

import pyvene as pv

N = 6


@pytest.fixture(scope="module")
def gpt2():
    m = make_gpt2(seed=3)
    m.generation_config.eos_token_id = None  # never stop early: the manual loop does not
    m.generation_config.pad_token_id = 0
    return m


@pytest.fixture(scope="module")
def llama():
    m = make_llama(seed=4)
    m.generation_config.eos_token_id = None
    return m


def manual_greedy(model, input_ids, n, module, edit, attention_mask=None, pre=False):
    """Greedy decoding without cache; ``edit(x, S)`` changes module's output (or input with
    ``pre``) given the full current sequence (S = its length)."""
    seq = input_ids
    mask = attention_mask
    for _ in range(n):
        length = seq.shape[1]
        if pre:

            def hook(mod, args):
                return (edit(args[0].clone(), length), *args[1:])

            handle = module.register_forward_pre_hook(hook)
        else:

            def hook(mod, args, out):
                x = out[0] if isinstance(out, tuple) else out
                new = edit(x.clone(), length)
                return (new, *out[1:]) if isinstance(out, tuple) else new

            handle = module.register_forward_hook(hook)
        try:
            kw = {} if mask is None else {"attention_mask": mask}
            if mask is not None:
                kw["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=seq, use_cache=False, **kw).logits
        finally:
            handle.remove()
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], 1)
        if mask is not None:
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
    return seq


def block_out(model, inputs, layer):
    return model(**inputs, output_hidden_states=True).hidden_states[layer + 1]


def wrap(model, reps):
    return pv.IntervenableModel(reps, model)


def greedy(**kw):
    return {"max_new_tokens": N, "do_sample": False, **kw}


def test_noop_configurations_equal_model_generate(gpt2):
    base = ids(2, 5, 1)
    ref = gpt2.generate(**base, **greedy())
    vanilla = wrap(gpt2, {"layer": 1, "component": "block_output"})
    assert vanilla.generate(base, **greedy())[0] is None
    assert torch.equal(vanilla.generate(base, **greedy())[1], ref)
    add = wrap(gpt2, {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention})  # fmt: skip
    for on_prompt in (False, True):
        _, out = add.generate(
            base, source_representations=torch.zeros(24), intervene_on_prompt=on_prompt, **greedy()
        )
        assert torch.equal(out, ref)
    orig, out = add.generate(
        base, source_representations=torch.zeros(24), output_original_output=True, **greedy()
    )
    assert torch.equal(orig, ref) and torch.equal(out, ref)


def test_sampling_passes_through(gpt2):
    base = ids(1, 4, 2)
    torch.manual_seed(7)
    ref = gpt2.generate(**base, max_new_tokens=8, do_sample=True, temperature=0.7)
    add = wrap(gpt2, {"layer": 0, "component": "mlp_output", "intervention_type": pv.AdditionIntervention})  # fmt: skip
    torch.manual_seed(7)
    _, out = add.generate(
        base, source_representations=torch.zeros(24), max_new_tokens=8, do_sample=True,
        temperature=0.7,
    )  # fmt: skip
    assert torch.equal(out, ref) and out.shape == (1, 12)


def test_source_on_prompt_positions_matches_no_cache_loop(gpt2):
    base, source = ids(1, 6, 3), ids(1, 8, 4)
    src = block_out(gpt2, source, 1)

    def edit(x, length):
        x[:, [2, 5]] = src[:, [5, 3]]
        return x

    expect = manual_greedy(gpt2, base["input_ids"], N, gpt2.transformer.h[1], edit)
    pvm = wrap(gpt2, {"layer": 1, "component": "block_output"})
    locs = {"sources->base": ([[[5, 3]]], [[[2, 5]]])}
    _, out = pvm.generate(base, [source], unit_locations=locs, intervene_on_prompt=True, **greedy())
    assert torch.equal(out, expect)
    assert not torch.equal(out, gpt2.generate(**base, **greedy()))


def test_seed_form_sources_without_locations_patch_the_prompt(gpt2):
    base, source = ids(1, 6, 5), ids(1, 6, 6)
    src = block_out(gpt2, source, 0)

    def edit(x, length):
        x[:, :6] = src
        return x

    expect = manual_greedy(gpt2, base["input_ids"], N, gpt2.transformer.h[0], edit)
    pvm = wrap(gpt2, {"layer": 0, "component": "block_output"})
    _, out = pvm.generate(base, sources=[source], **greedy())
    assert torch.equal(out, expect)


def test_steering_every_new_token_matches_no_cache_loop(gpt2):
    base = ids(1, 5, 7)
    vec = torch.randn(24, generator=torch.Generator().manual_seed(0)) * 4

    def edit(x, length):
        x[:, 5:] += vec  # generated tokens only: the prompt call is skipped
        return x

    expect = manual_greedy(gpt2, base["input_ids"], N, gpt2.transformer.h[1], edit)
    pvm = wrap(gpt2, {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention})  # fmt: skip
    _, default = pvm.generate(base, source_representations=vec, **greedy())
    _, explicit = pvm.generate(base, source_representations=vec, unit_locations={"base": 0}, **greedy())  # fmt: skip
    assert torch.equal(default, expect) and torch.equal(explicit, expect)
    assert not torch.equal(default, gpt2.generate(**base, **greedy()))


def test_steering_every_position_matches_no_cache_loop(llama):
    base = ids(1, 5, 8)
    vec = torch.randn(32, generator=torch.Generator().manual_seed(1)) * 3

    def edit(x, length):
        return x + vec

    expect = manual_greedy(llama, base["input_ids"], N, llama.model.layers[1].mlp, edit)
    pvm = wrap(llama, {"layer": 1, "component": "mlp_output", "intervention_type": pv.AdditionIntervention})  # fmt: skip
    _, out = pvm.generate(base, source_representations=vec, intervene_on_prompt=True, **greedy())
    assert torch.equal(out, expect)


def test_timestep_selector_prompt_position_and_chosen_steps(gpt2):
    base = ids(1, 5, 9)
    a = torch.randn(24, generator=torch.Generator().manual_seed(2)) * 5
    b = torch.randn(24, generator=torch.Generator().manual_seed(3)) * 5

    def edit(x, length):
        x[:, 1] += a  # prompt position 1, prompt call
        for step in (2, 3):  # decoding call t feeds absolute position 5 + t - 1
            if 5 + step - 1 < length:
                x[:, 5 + step - 1] += b
        return x

    expect = manual_greedy(gpt2, base["input_ids"], N, gpt2.transformer.h[2], edit)
    rep = {"layer": 2, "component": "block_output", "intervention_type": pv.AdditionIntervention}
    pvm = wrap(gpt2, [rep, rep])
    _, out = pvm.generate(
        base,
        unit_locations={"base": [[[1]], [[0]]]},
        source_representations=[a, b],
        timestep_selector=[lambda step: step == 0, lambda step: step in (2, 3)],
        **greedy(),
    )
    assert torch.equal(out, expect)


def test_left_padded_batch_equals_one_by_one(llama):
    prompts = [[5, 9, 3, 7, 2, 11], [4, 8], [13, 6, 1, 21]]
    width = max(map(len, prompts))
    input_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    vec = torch.randn(32, generator=torch.Generator().manual_seed(4)) * 2
    pvm = wrap(llama, {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention})  # fmt: skip
    for on_prompt in (True, False):
        kw = {"source_representations": vec, "intervene_on_prompt": on_prompt, **greedy()}
        _, batch = pvm.generate({"input_ids": input_ids, "attention_mask": mask}, **kw)
        for row, p in enumerate(prompts):
            _, one = pvm.generate({"input_ids": torch.tensor([p])}, **kw)
            assert batch[row, width:].tolist() == one[0, len(p) :].tolist()


def test_collect_during_generation(gpt2):
    base = ids(2, 5, 10)
    pvm = wrap(gpt2, {"layer": 1, "component": "block_output", "intervention_type": pv.CollectIntervention})  # fmt: skip
    (orig, collected), out = pvm.generate(base, max_new_tokens=4, do_sample=False)
    assert orig is None and len(collected) == 3
    assert all(c.shape == (2, 1, 24) for c in collected)
    full = block_out(gpt2, {"input_ids": out[:, :-1]}, 1)
    for t, c in enumerate(collected):
        torch.testing.assert_close(c[:, 0], full[:, 5 + t])
    assert torch.equal(out, gpt2.generate(**base, max_new_tokens=4, do_sample=False))


def test_iti_head_shift_matches_manual_pre_hook(llama):
    base = ids(1, 5, 11)
    shift = torch.randn(2, 8, generator=torch.Generator().manual_seed(5)) * 3  # heads 1 and 3

    def edit(x, length):  # o_proj input (B, S, 4 heads * 8)
        x = x.view(*x.shape[:2], 4, 8).clone()
        x[:, :, [1, 3]] += shift
        return x.flatten(2)

    module = llama.model.layers[1].self_attn.o_proj
    expect = manual_greedy(llama, base["input_ids"], N, module, edit, pre=True)
    rep = {"layer": 1, "component": "head_attention_value_output", "unit": "h",
           "max_number_of_units": 2, "intervention_type": pv.AdditionIntervention}  # fmt: skip
    pvm = wrap(llama, rep)
    _, out = pvm.generate(
        base,
        unit_locations={"base": [[[1, 3]]]},
        source_representations=shift[None, :, None, :],  # (1, heads, 1, head_dim)
        timestep_selector=lambda step: True,
        **greedy(),
    )
    assert torch.equal(out, expect)


def test_repeated_rows_for_return_sequences(gpt2):
    base, source = ids(2, 5, 12), ids(2, 5, 13)
    pvm = wrap(gpt2, {"layer": 1, "component": "block_output"})
    locs = {"sources->base": ([[[1], [2]]], [[[3], [4]]])}
    kw = {"unit_locations": locs, "intervene_on_prompt": True}
    _, one = pvm.generate(base, [source], **kw, **greedy())
    _, beams = pvm.generate(base, [source], **kw, **greedy(num_beams=2, num_return_sequences=2))
    assert beams.shape[0] == 4
    _, sampled = pvm.generate(
        base, [source], **kw, max_new_tokens=3, do_sample=True, num_return_sequences=3
    )
    assert sampled.shape == (6, 8) and one.shape == (2, 11)


def test_model_left_clean_and_errors(gpt2):
    def hooks():
        return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in gpt2.modules()]

    before = hooks()
    pvm = wrap(gpt2, {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention})  # fmt: skip
    with pytest.raises(pv.ConfigError, match="timestep_selector"):
        pvm.generate(ids(1, 4, 0), source_representations=torch.ones(24),
                     timestep_selector=[None, None], **greedy())  # fmt: skip
    with pytest.raises(pv.DimensionMismatchError):
        pvm.generate(ids(1, 4, 0), source_representations=torch.ones(7),
                     intervene_on_prompt=True, **greedy())  # fmt: skip
    assert hooks() == before
