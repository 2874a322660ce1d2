"""GPT-2 ``attention_weight`` (the input of ``h[L].attn.attn_dropout``: post-softmax
probabilities ``(B, heads, Q, K)``; "pos" units pick heads, dim 1) and hooks on the raw
``attn_dropout`` path, which transformers 5 only calls while pyvene hooks it.

References are independent of pyvene: ``output_attentions=True`` of a plain eager run, a
softmax(QK^T / sqrt(d) + mask) computed here from ``c_attn``'s output read by a plain torch
hook, and, for edits, a forward whose attention function is written here (registered with
transformers' public ``AttentionInterface``) and edits the probabilities it computes."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from conftest import make_gpt2
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

import pyvene as pv
from pyvene.hooks import HookSession

LAYER, HEADS, VOCAB = 1, 4, 50
EDITS: dict[int, object] = {}  # layer -> fn(probabilities) used by the manual attention
LOCAL = threading.local()


def manual_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """Plain softmax(QK^T * scale + mask) @ V, with EDITS[layer] applied to the weights."""
    scores = query @ key.transpose(-1, -2) * module.scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = scores.softmax(-1)
    edit = getattr(LOCAL, "edits", {}).get(module.layer_idx)
    if edit is not None:
        weights = edit(weights)
    return (weights @ value).transpose(1, 2), weights


AttentionInterface.register("test_manual", manual_attention)
AttentionMaskInterface.register("test_manual", ALL_MASK_ATTENTION_FUNCTIONS["eager"])


def manual_run(model, inputs, edits):
    """Logits of a copy of ``model`` whose attention is :func:`manual_attention`."""
    twin = copy.deepcopy(model)
    twin.config._attn_implementation = "test_manual"
    LOCAL.edits = edits
    try:
        with torch.no_grad():
            return twin(**inputs).logits
    finally:
        LOCAL.edits = {}


def sdpa_gpt2():
    model = make_gpt2(seed=1)
    model.config._attn_implementation = "sdpa"
    return model


MODELS = {"eager": lambda: make_gpt2(), "sdpa": sdpa_gpt2}


def inputs(batch=2, seq=6, seed=0, pad=False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    if pad:
        mask[0, :2] = 0  # left padding in row 0
    return {"input_ids": ids, "attention_mask": mask}


def hook_state(model):
    return [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in model.modules()]


def manual_weights(model, x):
    """softmax(QK^T / sqrt(dh) + causal and padding mask) of layer LAYER, from c_attn."""
    got = {}
    attn = model.transformer.h[LAYER].attn
    handle = attn.c_attn.register_forward_hook(lambda m, i, o: got.setdefault("qkv", o))
    with torch.no_grad():
        model(**x)
    handle.remove()
    q, k, _ = got["qkv"].split(model.config.n_embd, dim=-1)
    q, k = (t.unflatten(-1, (HEADS, -1)).transpose(1, 2) for t in (q, k))
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    seq = scores.shape[-1]
    allowed = torch.ones(seq, seq).tril().bool() & x["attention_mask"].bool()[:, None, None, :]
    return scores.masked_fill(~allowed, torch.finfo(scores.dtype).min).softmax(-1)


@pytest.mark.parametrize("impl", sorted(MODELS))
def test_collect_equals_output_attentions_and_manual_softmax(impl):
    model = MODELS[impl]()
    x = inputs(pad=True)
    eager = copy.deepcopy(model)
    eager.config._attn_implementation = "eager"
    with torch.no_grad():
        expect = eager(**x, output_attentions=True).attentions[LAYER]
    before = hook_state(model)
    pvm = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
        model,
    )  # fmt: skip
    (_, collected), _ = pvm(x, unit_locations={"base": list(range(HEADS))})
    assert collected[0].shape == (2, HEADS, 6, 6)
    torch.testing.assert_close(collected[0], expect, rtol=0, atol=1e-6)
    manual = manual_weights(model, x)
    for b in range(2):  # padded query rows of row 0 are not meaningful: compare real ones
        real = x["attention_mask"][b].bool()
        torch.testing.assert_close(collected[0][b][:, real], manual[b][:, real])
    assert model.config._attn_implementation == impl and hook_state(model) == before


def test_heads_subset_and_factory_models():
    for create in (pv.create_gpt2, pv.create_gpt2_lm):
        _, _, model = create()
        heads = model.config.n_head
        x = {"input_ids": torch.randint(0, 1000, (1, 5))}
        with torch.no_grad():
            expect = model(**x, output_attentions=True).attentions[2]
        pvm = pv.IntervenableModel(
            {"layer": 2, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
            model,
        )  # fmt: skip
        (_, collected), _ = pvm(x, unit_locations={"base": [heads - 1, 0, 1]})
        torch.testing.assert_close(collected[0], expect[:, [heads - 1, 0, 1]], rtol=0, atol=1e-6)


@pytest.mark.parametrize("impl", sorted(MODELS))
def test_zero_chosen_heads_equals_manual_forward(impl):
    model = MODELS[impl]()
    x = inputs(seed=3)
    chosen = [[1, 3], [0, 2]]  # per example

    def zero(w):
        w = w.clone()
        for b, hs in enumerate(chosen):
            w[b, hs] = 0
        return w

    expect = manual_run(model, x, {LAYER: zero})
    pvm = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "intervention_type": pv.ZeroIntervention},
        model,
    )  # fmt: skip
    with torch.no_grad():
        _, out = pvm(x, unit_locations={"base": [chosen]})
    torch.testing.assert_close(out.logits, expect, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        plain = model(**x).logits
    assert (plain - expect).abs().max() > 1e-3  # the edit mattered


def test_vanilla_patch_of_heads_from_source_equals_manual_forward():
    model = sdpa_gpt2()
    base, source = inputs(seed=4), inputs(seed=5)
    kept = {}

    def keep(w):
        kept["w"] = w.clone()
        return w

    manual_run(model, source, {LAYER: keep})
    src_heads, base_heads = [[2], [0]], [[1], [3]]

    def patch(w):
        w = w.clone()
        for b in range(2):
            w[b, base_heads[b]] = kept["w"][b, src_heads[b]]
        return w

    expect = manual_run(model, base, {LAYER: patch})
    pvm = pv.IntervenableModel({"layer": LAYER, "component": "attention_weight"}, model)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": ([src_heads], [base_heads])})
    torch.testing.assert_close(out.logits, expect, rtol=1e-5, atol=1e-5)


def test_lambda_on_raw_attn_dropout_path_fires_and_edits_positions():
    model = sdpa_gpt2()
    x = inputs(seed=6)
    mask = torch.ones(1, HEADS, 6, 6)
    mask[:, 2, 3:, :2] = 0  # head 2, query positions 3.., keys 0 and 1
    seen = []

    def lam(b, s):
        seen.append(b.detach().clone())
        return b * mask

    expect = manual_run(model, x, {LAYER: lambda w: w * mask})
    pvm = pv.IntervenableModel(
        {"component": f"transformer.h[{LAYER}].attn.attn_dropout.input", "intervention": lam},
        model,
    )
    with torch.no_grad():
        _, out = pvm(x)
    torch.testing.assert_close(out.logits, expect, rtol=1e-5, atol=1e-5)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], manual_weights(model, x), rtol=1e-5, atol=1e-6)


def test_model_restored_after_call_raising_call_and_generate():
    model = sdpa_gpt2()
    x = inputs(seed=7)
    with torch.no_grad():
        plain = model(**x).logits
    before = hook_state(model)

    def boom(b, s):
        raise RuntimeError("boom")

    bad = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "intervention": boom}, model
    )
    with pytest.raises(RuntimeError, match="boom"):
        bad(x)
    assert model.config._attn_implementation == "sdpa" and hook_state(model) == before
    pvm = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
        model,
    )  # fmt: skip
    (_, got), gen = pvm.generate(
        {"input_ids": x["input_ids"][:1]}, max_new_tokens=3, do_sample=False,
        intervene_on_prompt=True,
    )  # fmt: skip
    assert gen.shape == (1, 9) and got[0].shape == (1, HEADS, 6, 6)  # prompt and each step
    assert all(g.shape[-2:] == (1, 6 + i) for i, g in enumerate(got[1:], 1))
    assert model.config._attn_implementation == "sdpa" and hook_state(model) == before
    with torch.no_grad():
        assert torch.equal(model(**x).logits, plain)


def test_nested_sessions_switch_once_and_restore_last():
    model = sdpa_gpt2()
    pv.IntervenableModel({"layer": 0, "component": "attention_weight"}, model)  # resolves it
    drop = model.transformer.h[0].attn.attn_dropout
    calls = []
    with HookSession() as outer:
        outer.on_input(drop, lambda t: calls.append("outer"))
        with HookSession() as inner:
            inner.on_input(drop, lambda t: calls.append("inner"))
            with torch.no_grad():
                model(**inputs(seq=3))
        assert model.config._attn_implementation != "sdpa"  # outer still open
    assert model.config._attn_implementation == "sdpa"
    assert calls == ["outer", "inner"]


def test_train_mode_uses_the_same_dropout_as_eager():
    model = make_gpt2()
    model.config.attn_pdrop = 0.5
    for block in model.transformer.h:
        block.attn.attn_dropout.p = 0.5
    model.train()
    x = inputs(seed=8)
    torch.manual_seed(11)
    with torch.no_grad():
        expect = model(**x, output_attentions=True).attentions[LAYER]
    pvm = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "intervention_type": pv.CollectIntervention},
        model,
    )  # fmt: skip
    model.train()  # wrapping put it in eval mode
    torch.manual_seed(11)
    (_, collected), _ = pvm(x, unit_locations={"base": list(range(HEADS))})
    assert collected[0].shape == expect.shape
    # the hook sees the probabilities before dropout; eager returns them after it
    dropped = expect == 0
    assert dropped.any()
    torch.testing.assert_close(collected[0] * 2 * ~dropped, expect, rtol=1e-6, atol=1e-6)


def test_other_families_say_attention_weight_is_gpt2_only(llama):
    with pytest.raises(pv.UnknownComponentError, match="GPT-2 only"):
        pv.IntervenableModel({"layer": 0, "component": "attention_weight"}, llama)


def test_factories_default_to_eager_and_keep_a_chosen_implementation():
    from transformers import GPT2Config

    for create in (pv.create_gpt2, pv.create_gpt2_lm):
        config, _, model = create(config=GPT2Config(n_embd=16, n_head=2, n_layer=1))
        assert model.config._attn_implementation == "eager"
        model.config.output_attentions = True  # the original's tests set it (eager only)
        chosen = GPT2Config(n_embd=16, n_head=2, n_layer=1, attn_implementation="sdpa")
        assert create(config=chosen)[2].config._attn_implementation == "sdpa"


def test_plain_call_in_another_thread_during_the_switch_is_unaffected():
    """Thread B calls the model while thread A's intervened call is paused inside its hook
    (the implementation is switched then): B gets the plain eager result, A's edit does not
    act in B, and A still gets its edit."""
    model = make_gpt2()
    x = inputs(seed=9)
    with torch.no_grad():
        plain = model(**x).logits
    expect = manual_run(model, x, {LAYER: torch.zeros_like})
    inside, done, got = threading.Event(), threading.Event(), {}

    def pause_and_zero(b, s):
        inside.set()
        assert done.wait(timeout=120)
        return torch.zeros_like(b)

    def other():
        assert inside.wait(timeout=120)
        got["impl"] = model.config._attn_implementation
        with torch.no_grad():
            got["logits"] = model(**x).logits
        done.set()

    pvm = pv.IntervenableModel(
        {"layer": LAYER, "component": "attention_weight", "intervention": pause_and_zero}, model
    )
    thread = threading.Thread(target=other)
    thread.start()
    with torch.no_grad():
        _, out = pvm(x)
    thread.join()
    assert got["impl"] != "eager"  # B ran during the switch
    assert torch.equal(got["logits"], plain)
    torch.testing.assert_close(out.logits, expect, rtol=1e-5, atol=1e-5)
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("which", ["sweep", "attribution"])
def test_sweeps_and_attribution_refuse_attention_weight(which):
    """Their positions would index heads of (B, H, Q, K): refused by name, model left as it was."""
    from pyvene.analysis import attribution_patching, patching_sweep

    model = make_gpt2(seed=1)
    before = hook_state(model), model.config._attn_implementation
    x, y = inputs(batch=1, seed=0), inputs(batch=1, seed=1)
    run = patching_sweep if which == "sweep" else attribution_patching
    with pytest.raises(
        pv.ConfigError, match=r"attention_weight.*\(1, 4, 6, 6\).*head_attention_value_output"
    ):
        run(model, x, y, components=["attention_weight"], metric=lambda logits: logits[:, 0])
    assert (hook_state(model), model.config._attn_implementation) == before
