"""The HF Trainer trains an IntervenableModel (the original's config is a PretrainedConfig,
which Trainer reads): the loss falls and only intervention weights change; interventions
swapped with ``interventions[key] = module`` run on the next call; the original's private
attributes that clients read mean what they meant."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import hooked, ids, make_gpt2, make_llama
from trainer_helpers import Data, InterventionTrainer

import pyvene as pv
from pyvene.zoo import load_smollm2_tokenizer


def test_hf_trainer_trains_only_the_intervention(tmp_path):
    model = make_llama(seed=3)
    rep = {"layer": 2, "component": "block_output", "low_rank_dimension": 4,
           "intervention_type": pv.LoRAIntervention}  # fmt: skip
    pvm = pv.IntervenableModel(rep, model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    lora_b = pvm.interventions[0].lora_B.weight.detach().clone()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=8, per_device_train_batch_size=3,
        learning_rate=2e-1, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
        remove_unused_columns=False, disable_tqdm=True, seed=0,
    )  # fmt: skip
    tok = load_smollm2_tokenizer()  # Trainer aligns its special tokens on model.config
    trainer = InterventionTrainer(model=pvm, args=args, train_dataset=Data(), processing_class=tok)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.9 * losses[0], losses  # the final norm bounds what one block can do
    for n, p in model.named_parameters():
        assert torch.equal(p, frozen[n]), n
    assert not torch.equal(pvm.interventions[0].lora_B.weight, lora_b)
    assert isinstance(pvm.config, transformers.PretrainedConfig)
    # the trained intervention is exactly out + B(A(x)), x the block's input (plain hook)
    iv = pvm.interventions[0]
    batch = ids(2, 7, 9)

    def lora(mod, args, kwargs, out):
        x = args[0] if args else kwargs["hidden_states"]
        h = out[0] if isinstance(out, tuple) else out
        new = h + iv.lora_B(iv.lora_A(x)) * iv.scale
        return (new, *out[1:]) if isinstance(out, tuple) else new

    with torch.no_grad():
        handle = model.model.layers[2].register_forward_hook(lora, with_kwargs=True)
        try:
            want = model(**batch).logits
        finally:
            handle.remove()
        _, got = pvm(batch, unit_locations={"base": list(range(7))})
    torch.testing.assert_close(got.logits, want, atol=1e-5, rtol=0)


class Double(pv.ConstantSourceIntervention, pv.LocalistRepresentationIntervention):
    def forward(self, base, source=None, subspaces=None):
        return base * 2


def test_swapped_intervention_runs_on_the_next_call():
    gpt2 = make_gpt2(seed=7)
    pvm = pv.IntervenableModel({"layer": 1, "intervention_type": pv.ZeroIntervention}, gpt2)
    base = ids(1, 5, 3)
    key = pvm.sorted_keys[0]
    pvm.interventions[key] = Double()
    handle = hooked(gpt2.transformer.h[1], "output", lambda x: x * 2)
    try:
        want = gpt2(**base).logits
    finally:
        handle.remove()
    _, out = pvm(base)
    torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=0)
    assert pvm.interventions[key][0] is pvm.interventions[key]
    with pytest.raises(pv.ConfigError, match="nn.Module"):
        pvm.interventions[key] = lambda b, s: b
    with pytest.raises(pv.ConfigError, match="layer_1_comp_block_output_unit_pos_nunit_1#0"):
        pvm.interventions["layer_9_comp_block_output_unit_pos_nunit_1#0"] = Double()


def test_original_private_attributes():
    gpt2 = make_gpt2(seed=8)
    reps = [
        {"layer": 0, "intervention_link_key": 7, "group_key": 0},
        {"layer": 1, "intervention_link_key": 7, "group_key": 1},
        {"layer": 2, "group_key": 1},
    ]
    pvm = pv.IntervenableModel(pv.IntervenableConfig(reps, pv.RotatedSpaceIntervention), gpt2)
    keys = pvm.sorted_keys
    assert pvm._intervention_reverse_link == {keys[0]: "link#7", keys[1]: "link#7"}
    assert pvm._intervention_group == {0: [keys[0]], 1: [keys[1], keys[2]]}
    assert pvm.interventions[keys[0]] is pvm.interventions[keys[1]]
    assert list(pvm.representations) == keys and pvm.mode == "parallel"


def test_cached_activations_after_a_collecting_call():
    gpt2 = make_gpt2(seed=9)
    pvm = pv.IntervenableModel({"layer": 1, "intervention_type": pv.CollectIntervention}, gpt2)
    base = ids(2, 5, 1)
    (_, collected), _ = pvm(base, unit_locations={"base": 3})
    cached = pvm.get_cached_activations()
    assert list(cached) == pvm.sorted_keys
    want = gpt2(**base, output_hidden_states=True).hidden_states[2][:, [3]]
    torch.testing.assert_close(cached[pvm.sorted_keys[0]], want)
    assert torch.equal(cached[pvm.sorted_keys[0]], collected[0])
    assert pvm.get_cached_hot_activations() == {}
    plain = pv.IntervenableModel({"layer": 1}, gpt2)
    plain(base, [ids(2, 5, 2)])
    assert plain.get_cached_activations() == {}  # cleared after a call that collects nothing
