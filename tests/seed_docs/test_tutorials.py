"""tutorials.md (seed document 003): each python block runs and equals an independent
computation (plain torch hooks, HF generate)."""

from __future__ import annotations

import pytest
import torch

from seed_docs.support import (
    assert_close,
    capture,
    layers_of,
    manual_patch,
    run_block,
    run_edited,
)


# ====================================================================== tutorials.md (003)
@pytest.mark.slow
def test_tutorials_1_whole_layer_patch_makes_the_run_the_sources(smol_dir, smol):
    ns = run_block("tutorials_1", MODEL_DIR=smol_dir).ns
    model = smol[0]
    base, source = ns["base_inputs"], ns["source_inputs"]
    want = manual_patch(model, base, source, 8, list(range(9)), list(range(9)))
    assert_close(ns["patched_logits"], want)
    with torch.no_grad():  # both prompts have 9 tokens: from layer 8 on it is the source run
        source_probs = torch.softmax(model(**source).logits[0, -1], -1)
    assert_close(ns["probs"], source_probs, atol=1e-5)
    assert ns["probs"][ns["paris_token"]] > 0.5 > ns["probs"][ns["rome_token"]]


def test_tutorials_2_causal_trace_restores_the_clean_run(gpt2_dir):
    """No unit_locations: each restoration puts back the whole clean layer, so every layer gives
    the clean probability; the noise alone changes it."""
    ns = run_block("tutorials_2", MODEL_DIR=gpt2_dir).ns
    results, n_layer = ns["results"], ns["model"].config.n_layer
    assert results.shape == (n_layer,)
    assert abs(results / ns["clean_prob"] - 1).max() < 1e-4  # a random model: P ~ 1/vocab
    assert len(ns["critical_layers"]) == min(5, n_layer)
    with torch.no_grad():
        _, noised = ns["intervenable"](ns["clean_inputs"])  # no source: the noise only
    clean_logits = ns["clean_outputs"].logits
    assert not torch.allclose(noised.logits, clean_logits, atol=1e-3)


@pytest.mark.slow
def test_tutorials_3_self_source_learns_nothing(smol_dir, smol):
    """As written (SPEC A): source == base, so the intervention is the identity and its
    gradient is zero."""
    ns = run_block("tutorials_3", MODEL_DIR=smol_dir, STEPS=3).ns
    rotation = ns["rotation"]
    assert (
        rotation is ns["intervenable"].interventions["layer_6_comp_block_output_unit_pos_nunit_1#0"]
    )
    assert rotation.rotate_layer.weight.shape == (576, 64)
    with torch.no_grad():
        base_logits = smol[0](**ns["base_inputs"]).logits[0, -1]
    base_loss = -torch.log_softmax(base_logits, -1)[ns["target_token"]]
    assert abs(ns["loss"].item() - base_loss.item()) < 1e-3
    grads = [p.grad for p in ns["intervenable"].get_trainable_parameters()]
    assert all(g is None or g.abs().max() < 1e-5 for g in grads)


@pytest.mark.slow
def test_tutorials_3_corrected_das_moves_paris(smol_dir, smol):
    ns = run_block("tutorials_3_corrected", MODEL_DIR=smol_dir, STEPS=10).ns
    model, target = smol[0], ns["target_token"]
    with torch.no_grad():
        base_loss = -torch.log_softmax(model(**ns["base_inputs"]).logits[0, -1], -1)[target]
        _, out = ns["intervenable"](ns["base_inputs"], [ns["source_inputs"]])
    assert ns["loss"].item() < base_loss.item() - 3  # ~7 nats before training
    assert torch.softmax(out.logits[0, -1], -1)[target] > 0.5
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.slow
def test_tutorials_4_position_specific(smol_dir, smol):
    block = run_block("tutorials_4", MODEL_DIR=smol_dir)
    base, source = block.ns["base_inputs"], block.ns["source_inputs"]
    one, two = block.history["outputs"]
    model = smol[0]
    assert_close(one.logits, manual_patch(model, base, source, 5, [0], [0]))
    assert_close(two.logits, manual_patch(model, base, source, 5, [0, 2], [0, 2]))


@pytest.mark.slow
def test_tutorials_5_collected_activations(smol_dir, smol):
    ns = run_block("tutorials_5", MODEL_DIR=smol_dir).ns
    model, inputs = smol[0], ns["inputs"]
    hidden = run_edited(model, inputs, output_hidden_states=True).hidden_states
    assert_close(ns["layer5_output"], hidden[6], atol=0)
    attn = capture(model, inputs, layers_of(model)[10].self_attn)
    assert_close(ns["layer10_attn"], attn, atol=1e-5)
    assert ns["layer10_attn"].shape == (1, 2, 576)


@pytest.mark.slow
def test_tutorials_6_steering_block(smol_dir, smol):
    """The collected direction is the MLP-output mean difference; the generate() call gives the
    AdditionIntervention no source, so it samples exactly what the plain model samples."""
    torch.manual_seed(0)
    ns = run_block("tutorials_6", MODEL_DIR=smol_dir).ns
    model = smol[0]
    mlp = layers_of(model)[6].mlp
    happy = capture(model, ns["happy_inputs"], mlp).mean(dim=1)
    sad = capture(model, ns["sad_inputs"], mlp).mean(dim=1)
    assert_close(ns["steering_direction"], happy - sad, atol=1e-5)
    torch.manual_seed(0)
    plain = model.generate(**ns["inputs"], max_new_tokens=20, do_sample=True, temperature=0.7)
    assert torch.equal(ns["output"], plain)
