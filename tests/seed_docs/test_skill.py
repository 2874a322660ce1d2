"""SKILL.md (seed documents 000 and 002): each python block runs and equals an independent
computation (plain torch hooks on the Hugging Face model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pyvene as pv
from seed_docs.support import (
    BLOCKS,
    REPO,
    TUTORIAL1,
    assert_close,
    at_positions,
    capture,
    layers_of,
    run_block,
    run_edited,
    steering_vectors,
)


def test_skill_01_standard_import_is_this_library():
    block = run_block("skill_01")
    assert Path(block.ns["pv"].__file__).resolve().is_relative_to(REPO / "src" / "pyvene")


@pytest.mark.slow
def test_skill_02_core_concepts_patch_equals_manual_hook(smol_dir, smol):
    block = run_block("skill_02", MODEL_DIR=smol_dir)
    intervenable, ref, tok = block.ns["intervenable"], smol[0], block.ns["tokenizer"]
    assert list(intervenable.interventions) == ["layer_8_comp_block_output_unit_pos_nunit_1#0"]
    assert isinstance(intervenable.interventions[0], pv.VanillaIntervention)
    assert not any(p.requires_grad for p in block.ns["model"].parameters())  # wrapping freezes
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    with torch.no_grad():
        _, out = intervenable(base, [source], {"sources->base": 4})
    layer = layers_of(ref)[8]
    src = capture(ref, source, layer)
    want = run_edited(ref, base, {layer: at_positions(src, [4], [4])}).logits
    assert_close(out.logits, want)


@pytest.mark.slow
def test_skill_03_every_listed_component_resolves_on_smollm2(smol):
    components = run_block("skill_03").ns["components"]
    model, tok = smol
    inputs = tok("The Space Needle is in downtown", return_tensors="pt")
    seq = inputs["input_ids"].shape[1]
    collector = pv.IntervenableModel(
        [
            {"layer": 3, "component": c, "intervention_type": pv.CollectIntervention}
            for c in components
        ],
        model,
    )
    with torch.no_grad():
        (_, got), _ = collector(inputs)
    got = dict(zip(components, got))
    layer = layers_of(model)[3]
    hidden = run_edited(model, inputs, output_hidden_states=True).hidden_states
    assert_close(got["block_input"], hidden[3], atol=0)
    assert_close(got["block_output"], hidden[4], atol=0)
    references = {
        "mlp_input": capture(model, inputs, layer.mlp, "in"),
        "mlp_output": capture(model, inputs, layer.mlp),
        "mlp_activation": capture(model, inputs, layer.mlp.act_fn),  # SPEC A: act_fn(gate_proj(x))
        "attention_input": capture(model, inputs, layer.self_attn, "in"),
        "attention_output": capture(model, inputs, layer.self_attn),
        "attention_value_output": capture(model, inputs, layer.self_attn.o_proj, "in"),
        "query_output": capture(model, inputs, layer.self_attn.q_proj),
        "key_output": capture(model, inputs, layer.self_attn.k_proj),
        "value_output": capture(model, inputs, layer.self_attn.v_proj),
    }
    for name, want in references.items():
        assert_close(got[name], want, atol=1e-5)
    heads = got["head_attention_value_output"]  # (batch, heads, seq, head_dim)
    assert heads.shape == (1, 9, seq, 64)
    assert_close(heads.transpose(1, 2).reshape(1, seq, 576), references["attention_value_output"])


def test_skill_04_workflow1_causal_trace_equals_manual_restoration(gpt2_dir):
    block = run_block("skill_04", MODEL_DIR=gpt2_dir)
    ns = block.ns
    model, results = ns["model"], ns["results"]
    clean, corrupted = ns["clean_tokens"], ns["corrupted_tokens"]
    assert results.shape == (model.config.n_layer, clean["input_ids"].shape[1])
    seattle = ns["tokenizer"].encode(" Seattle")[0]
    for layer in range(model.config.n_layer):
        block_module = layers_of(model)[layer]
        src = capture(model, clean, block_module)
        if layer + 1 < model.config.n_layer:  # the seed's clean states (the last is post-ln_f)
            assert_close(src, ns["clean_states"][layer + 1], atol=1e-5)
        for pos in range(results.shape[1]):
            logits = run_edited(
                model, corrupted, {block_module: at_positions(src, [pos], [pos])}
            ).logits
            want = torch.softmax(logits[0, -1], -1)[seattle]
            torch.testing.assert_close(results[layer, pos], want, rtol=1e-5, atol=0)
    assert results.max() > 1.1 * results.min()  # restoring a position matters (a random model)


def test_skill_05_workflow2_attention_patching_equals_manual_hook(gpt2_dir):
    block = run_block("skill_05", MODEL_DIR=gpt2_dir)
    ns = block.ns
    model, clean, corrupted = ns["model"], ns["clean_tokens"], ns["corrupted_tokens"]
    assert len(ns["results"]) == model.config.n_layer
    for layer, diff in enumerate(ns["results"]):
        attn = layers_of(model)[layer].attn
        src = capture(model, clean, attn)
        logits = run_edited(model, corrupted, {attn: lambda x, src=src: src}).logits
        assert abs(diff - ns["logit_diff"](logits).item()) < 1e-5
    assert max(ns["results"]) - min(ns["results"]) > 0.1


def _iit_data(tok, n: int):
    base = tok("The capital of Italy is", return_tensors="pt")
    source = tok("The capital of France is", return_tensors="pt")
    target = torch.tensor([tok.encode(" Paris")[0]])
    return base, source, target, [(base, source, target)] * n


class LastTokenCE:
    """criterion(logits, target) for the IIT loops; records each loss."""

    def __init__(self):
        self.losses: list[float] = []

    def __call__(self, logits, target):
        loss = torch.nn.functional.cross_entropy(logits[:, -1], target)
        self.losses.append(loss.item())
        return loss


@pytest.mark.slow
def test_skill_06_workflow3_full_rank_rotation_is_a_plain_swap(smol_dir, smol, monkeypatch):
    """As written (SPEC A): RotatedSpace ignores low_rank_dimension (with a warning) and,
    without subspaces, swaps every rotated coordinate: the output is the source run's and the
    gradient is zero, so the loop learns nothing."""
    monkeypatch.setattr(pv.RotatedSpaceIntervention, "_warned_low_rank", False)
    base, source, target, data = _iit_data(smol[1], 2)
    criterion = LastTokenCE()
    with pytest.warns(UserWarning, match="low_rank_dimension has no effect") as record:
        block = run_block("skill_06", MODEL_DIR=smol_dir, dataloader=data, criterion=criterion)
    (warning,) = [w for w in record if "low_rank_dimension" in str(w.message)]
    assert warning.filename == str(BLOCKS / "skill_06.py")  # it names the user's line
    ns = block.ns
    rotation = ns["rotation"]
    assert rotation.weight.shape == (576, 576)
    with torch.no_grad():
        source_logits = smol[0](**source).logits
    assert_close(ns["outputs"].logits.detach(), source_logits, atol=5e-4)
    grads = [p.grad for p in ns["intervenable"].get_trainable_parameters()]
    assert all(g is None or g.abs().max() < 1e-4 for g in grads)  # ~1 for the corrected form
    assert abs(criterion.losses[0] - criterion.losses[-1]) < 1e-3


@pytest.mark.slow
def test_skill_06_corrected_low_rank_das_trains(smol_dir, smol):
    base, source, target, data = _iit_data(smol[1], 4)
    criterion = LastTokenCE()
    block = run_block(
        "skill_06_corrected", MODEL_DIR=smol_dir, dataloader=data, criterion=criterion
    )
    ns = block.ns
    w = ns["rotation"].weight
    assert w.shape == (576, 64)
    assert_close(w.T @ w, torch.eye(64), atol=1e-4)  # orthonormal columns after training
    assert criterion.losses[-1] < criterion.losses[0] - 1.0, criterion.losses  # 5.7 -> 4.2
    assert all(p.grad is None for p in ns["model"].parameters())  # the model stays frozen


@pytest.mark.slow
def test_skill_08_workflow4_steering_loaded_from_the_hub(smol_dir, smol, fake_hub):
    # an ITI-style intervention for SmolLM2, published under the seed's repo id
    model, tok = smol
    vecs = steering_vectors()
    published = pv.IntervenableModel(
        [
            {"layer": layer, "component": "attention_value_output",
             "intervention_type": pv.AdditionIntervention, "source_representation": vec}
            for layer, vec in vecs.items()
        ],
        model,
    )  # fmt: skip
    published.push_to_hub("zhengxuanzenwu/intervenable_honest_llama2_chat_7B")

    block = run_block("skill_08", MODEL_DIR=smol_dir)
    ids, prompt = block.ns["outputs"], block.ns["inputs"]["input_ids"]
    n = prompt.shape[1]
    assert ids.shape == (1, n + 100) and torch.equal(ids[:, :n], prompt)

    # teacher-forced reference without the cache: the vectors sit on every generated token
    # that was fed back (positions n .. end-1); greedy decoding must pick each next token
    def add_after_prompt(vec):
        def fn(x):
            x = x.clone()
            x[:, n:] += vec
            return x

        return fn

    edits = {
        layers_of(model)[layer].self_attn.o_proj: add_after_prompt(v) for layer, v in vecs.items()
    }
    steered = run_edited(model, {"input_ids": ids[:, :-1]}, in_edits=edits).logits
    assert torch.equal(steered[0, n - 1 :].argmax(-1), ids[0, n:])
    plain = run_edited(model, {"input_ids": ids[:, :-1]}).logits
    assert not torch.equal(plain[0, n - 1 :].argmax(-1), ids[0, n:])  # the steering matters


@pytest.mark.slow
def test_skill_10_wrong_component_is_named_right_one_works(smol):
    model, tok = smol
    block = run_block("skill_10", pv=pv)
    wrong, right = block.history["config"]
    with pytest.raises(pv.UnknownComponentError, match="'mlp'.*Did you mean.*'mlp_output'"):
        pv.IntervenableModel(wrong, model)
    patch = pv.IntervenableModel(right, model)
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    with torch.no_grad():
        _, out = patch(base, [source], {"sources->base": 2})
    mlp = layers_of(model)[0].mlp  # layer 0 is the default
    want = run_edited(model, base, {mlp: at_positions(capture(model, source, mlp), [2], [2])})
    assert_close(out.logits, want.logits)


@pytest.mark.slow
def test_skill_11_explicit_position_five(smol):
    model, tok = smol
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    intervenable = pv.IntervenableModel(
        pv.RepresentationConfig(unit="pos", max_number_of_units=1), model
    )
    block = run_block(
        "skill_11", pv=pv, intervenable=intervenable, base_tokens=base, source_tokens=source
    )
    assert block.ns["config"] == pv.RepresentationConfig(0, "block_output", "pos", 1)
    original, out = block.exprs[0]
    assert original is None
    layer = layers_of(model)[0]
    want = run_edited(model, base, {layer: at_positions(capture(model, source, layer), [5], [5])})
    assert_close(out.logits, want.logits)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers renames the method in v6
def test_skill_12_gradient_checkpointing_keeps_intervention_gradients(smol_dir, smol):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smol_dir)  # this block changes its model
    block = run_block("skill_12", pv=pv, model=model)
    assert model.is_gradient_checkpointing
    ref_model, tok = smol
    base, source = (tok(p, return_tensors="pt") for p in TUTORIAL1)
    with torch.no_grad():
        _, out = pv.IntervenableModel(block.ns["config"], model)(
            base, [source], {"sources->base": 3}
        )
    layer = layers_of(ref_model)[8]
    want = run_edited(
        ref_model, base, {layer: at_positions(capture(ref_model, source, layer), [3], [3])}
    )
    assert_close(out.logits, want.logits)

    grads = []
    for m in (model, ref_model):  # checkpointed (train mode) vs plain
        torch.manual_seed(0)
        das = pv.IntervenableModel(
            {"layer": 8, "component": "block_output", "low_rank_dimension": 4,
             "intervention_type": pv.LowRankRotatedSpaceIntervention}, m)  # fmt: skip
        das.train()
        _, out = das(base, [source], {"sources->base": 3})
        out.logits[0, -1].logsumexp(-1).backward()
        grads.append(das.interventions[0].rotate_layer.parametrizations.weight.original.grad)
        das.eval()
    assert ref_model.training is False
    assert grads[0].abs().max() > 0
    assert_close(grads[0], grads[1], atol=1e-5)


@pytest.mark.slow
def test_skill_13_lora_adds_low_rank_update_of_the_block_input(smol):
    model, tok = smol
    config = run_block("skill_13", pv=pv).ns["config"]
    lora = pv.IntervenableModel(config, model)
    adapter = lora.interventions[0]
    assert {n for n, _ in adapter.named_parameters()} == {"lora_A.weight", "lora_B.weight"}
    assert adapter.lora_A.weight.shape == (16, 576)
    base = tok(TUTORIAL1[0], return_tensors="pt")
    with torch.no_grad():
        plain = model(**base).logits
        assert_close(lora(base)[1].logits, plain, atol=0)  # B starts at zero
        adapter.lora_B.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
        _, out = lora(base)
    layer = layers_of(model)[0]
    x = capture(model, base, layer, "in")
    a, b = adapter.lora_A.weight, adapter.lora_B.weight
    want = run_edited(model, base, {layer: lambda y: y + x @ a.T @ b.T})
    assert_close(out.logits, want.logits)
    assert not torch.allclose(out.logits, plain)
