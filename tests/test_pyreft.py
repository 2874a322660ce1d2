"""pyreft 0.1.0 (a published client of the original API, installed with --no-deps) runs on
pyvene unchanged: its README flow (LoReFT, make_last_position_supervised_data_module,
ReftTrainerForCausalLM, generate with intervene_on_prompt, save, ReftModel.load), the other
ReFT variants and two layers at "f1+l1" positions, each checked against the ReFT formulas
computed by a plain torch hook.

Two adaptations live here, on pyreft's side (both fixed in pyreft's later source, see
docs/compat.md): 0.1.0's ``ReftTrainer.compute_loss`` has no ``num_items_in_batch``
parameter, which transformers >= 4.46 passes, and 0.1.0 does not tell the Trainer how to read
back the ``intervenable_model/`` folder its ``save_model`` writes into a checkpoint.
``Trainer5`` only forwards the call and reads that folder with ``load_intervention``. The tokenizer setup
(``model_max_length``, ``processing_class=`` instead of ``tokenizer=``) is what transformers 5
asks of any Trainer user.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import hooked

import pyvene as pv
from pyvene.zoo import load_smollm2_tokenizer, tiny_llama_config

pyreft = pytest.importorskip("pyreft")  # the Makefile installs pyreft==0.1.0 --no-deps

H, RANK, LAYER = 32, 4, 1
PROMPTS = ["Which dog breed do people think is cutest?", "What is 2 + 2?", "Name a color."]
ANSWERS = [" Corgi", " 4", " Blue"]


class Trainer5(pyreft.ReftTrainerForCausalLM):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(model, inputs, return_outputs)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        (model or self.model).load_intervention(f"{resume_from_checkpoint}/intervenable_model")


@pytest.fixture(scope="module")
def tok():
    tokenizer = load_smollm2_tokenizer()
    tokenizer.model_max_length = 256
    tokenizer.padding_side = "right"
    return tokenizer


def tiny(tok, seed=0):
    """A tiny random llama on the SmolLM2 tokenizer; a wider init than HF's 0.02 gives its
    49k-token head logits that one block's intervention can move within a few steps."""
    cfg = tiny_llama_config(vocab_size=len(tok), initializer_range=0.3)
    return pv.create_llama(cfg, seed=seed)[2]


def layer(model, i):
    return model.model.layers[i]


def loreft(iv):
    w = iv.rotate_layer.weight.detach()  # (H, r), orthonormal columns: R = w.T
    lin = iv.learned_source

    def f(h):
        return h + (lin(h).detach() - h @ w) @ w.T

    return f


def at(positions, fn):
    def hook(x):
        x = x.clone()
        x[:, positions] = fn(x[:, positions])
        return x

    return hook


def reference_logits(model, hooks, inputs):
    handles = [hooked(layer(model, i), "output", h) for i, h in hooks]
    try:
        with torch.no_grad():
            return model(**inputs).logits
    finally:
        for h in handles:
            h.remove()


def train(trainer):
    before = {n: p.detach().clone() for n, p in trainer.model.model.named_parameters()}
    ivs = [p.detach().clone() for p in trainer.model.get_trainable_parameters()]
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.9 * losses[0], losses
    for n, p in trainer.model.model.named_parameters():
        assert torch.equal(p, before[n]), n  # only intervention weights change
    after = trainer.model.get_trainable_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(after, ivs))


def args(tmp_path, epochs, lr=2e-2):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=3, logging_steps=1, report_to=[], use_cpu=True,
        save_strategy="no", seed=0, disable_tqdm=True,
    )  # fmt: skip


def test_readme_flow_loreft(tok, tmp_path, capsys):
    model = tiny(tok)
    iv = pyreft.LoreftIntervention(embed_dim=H, low_rank_dimension=RANK, dtype=torch.float32)
    rep = {"layer": LAYER, "component": "block_output", "low_rank_dimension": RANK, "intervention": iv}  # fmt: skip
    reft_model = pyreft.get_reft_model(model, pyreft.ReftConfig(representations=rep))
    reft_model.print_trainable_parameters()
    assert f"trainable intervention params: {2 * H * RANK + RANK:,d}" in capsys.readouterr().out

    prompt = tok(PROMPTS[0], return_tensors="pt")
    last = prompt["input_ids"].shape[-1] - 1
    want = reference_logits(model, [(LAYER, at([last], loreft(iv)))], prompt)
    _, out = reft_model(prompt, unit_locations={"sources->base": (None, [[[last]]])})
    torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=0)

    data = pyreft.make_last_position_supervised_data_module(tok, model, PROMPTS, ANSWERS)
    trainer = Trainer5(model=reft_model, processing_class=tok, args=args(tmp_path, 10), **data)
    train(trainer)

    # generation: the intervention acts on the prompt's last position, decoding goes on from it
    _, ids = reft_model.generate(
        prompt, unit_locations={"sources->base": (None, [[[last]]])}, intervene_on_prompt=True,
        max_new_tokens=4, do_sample=False, eos_token_id=None,
    )  # fmt: skip
    seq = prompt["input_ids"]
    for _ in range(4):  # greedy reference with a plain hook, recomputing the whole sequence
        logits = reference_logits(model, [(LAYER, at([last], loreft(iv)))], {"input_ids": seq})
        seq = torch.cat([seq, logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(ids, seq)

    reft_model.set_device("cpu")
    reft_model.save(save_directory=str(tmp_path / "reft_to_share"))
    loaded = pyreft.ReftModel.load(str(tmp_path / "reft_to_share"), model)
    assert isinstance(loaded, pyreft.ReftModel)
    assert isinstance(loaded.interventions[0], pyreft.LoreftIntervention)
    _, again = loaded(prompt, unit_locations={"sources->base": (None, [[[last]]])})
    _, now = reft_model(prompt, unit_locations={"sources->base": (None, [[[last]]])})
    assert torch.equal(again.logits, now.logits)


VARIANTS = {
    "NoreftIntervention": lambda iv: (
        lambda h: h + (iv.learned_source(h) - iv.proj_layer(h)) @ iv.proj_layer.weight
    ),  # fmt: skip
    "ConsreftIntervention": lambda iv: (
        lambda h: h + (iv.learned_source - h @ iv.rotate_layer.weight) @ iv.rotate_layer.weight.T
    ),  # fmt: skip
    "DireftIntervention": lambda iv: (
        lambda h: h + iv.learned_source(h) @ iv.rotate_layer.weight.T
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_construct_match_their_formula_and_reload(tok, name, tmp_path):
    model = tiny(tok, seed=1)
    cls = getattr(pyreft, name)
    iv = cls(embed_dim=H, low_rank_dimension=RANK, dtype=torch.float32, add_bias=True)
    reft_model = pyreft.get_reft_model(model, pyreft.ReftConfig(representations={"layer": LAYER, "intervention": iv}))  # fmt: skip
    inputs = tok(PROMPTS[1:], return_tensors="pt", padding=True)
    with torch.no_grad():
        want = reference_logits(model, [(LAYER, at([0, 2], VARIANTS[name](iv)))], inputs)
    loc = {"sources->base": (None, [[[0, 2]] * 2])}
    _, out = reft_model(inputs, unit_locations=loc)
    torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=0)
    reft_model.save(save_directory=str(tmp_path / name))
    loaded = pyreft.ReftModel.load(str(tmp_path / name), model)
    assert type(loaded.interventions[0]) is cls
    assert torch.equal(loaded(inputs, unit_locations=loc)[1].logits, out.logits)


def test_two_layers_first_and_last_positions_and_checkpoint(tok, tmp_path):
    model = tiny(tok, seed=2)
    reps = [
        {"layer": i, "component": "block_output", "low_rank_dimension": RANK,
         "intervention": pyreft.LoreftIntervention(embed_dim=H, low_rank_dimension=RANK, dtype=torch.float32)}
        for i in (0, 2)
    ]  # fmt: skip
    reft_model = pyreft.get_reft_model(model, pyreft.ReftConfig(representations=reps))
    data = pyreft.make_multiple_position_supervised_data_module(
        tok, model, PROMPTS, ANSWERS, positions="f1+l1", num_interventions=2
    )
    first_loc, last_loc = data["train_dataset"][0]["intervention_locations"]
    assert first_loc == [0] and last_loc[0] > 0
    ivs = list(reft_model.interventions.values())
    trainer = Trainer5(model=reft_model, processing_class=tok, args=args(tmp_path, 2), **data)
    trainer.train()
    prompt = tok(PROMPTS[0], return_tensors="pt")
    hooks = [(0, at(first_loc, loreft(ivs[0]))), (2, at(last_loc, loreft(ivs[1])))]
    want = reference_logits(model, hooks, prompt)
    locations = {"sources->base": (None, [[first_loc], [last_loc]])}
    _, out = reft_model(prompt, unit_locations=locations)
    torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=0)
    # a checkpoint as the Trainer writes it (save_intervention), read back into a fresh model
    trainer.save_model(str(tmp_path / "ckpt"))
    fresh_reps = [
        dict(r, intervention=pyreft.LoreftIntervention(embed_dim=H, low_rank_dimension=RANK, dtype=torch.float32))
        for r in reps
    ]  # fmt: skip
    fresh = pyreft.get_reft_model(model, pyreft.ReftConfig(representations=fresh_reps))
    fresh.load_intervention(str(tmp_path / "ckpt" / "intervenable_model"))
    assert torch.equal(fresh(prompt, unit_locations=locations)[1].logits, out.logits)


@pytest.mark.slow
def test_bundled_model_readme_layer_15(tmp_path):
    """The README's site on the bundled SmolLM2: LoReFT rank 4 at layer 15, generation with
    intervene_on_prompt, save and ReftModel.load (no training: that is the tests above)."""
    model, tokenizer = pv.load_smollm2()
    torch.manual_seed(0)
    iv = pyreft.LoreftIntervention(embed_dim=576, low_rank_dimension=RANK, dtype=torch.float32)
    with torch.no_grad():
        iv.learned_source.weight.mul_(20.0)  # a visible effect on an untrained intervention
    rep = {"layer": 15, "component": "block_output", "low_rank_dimension": RANK, "intervention": iv}  # fmt: skip
    reft_model = pyreft.get_reft_model(model, pyreft.ReftConfig(representations=rep))
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    last = prompt["input_ids"].shape[-1] - 1
    loc = {"sources->base": (None, [[[last]]])}
    _, ids = reft_model.generate(
        prompt, unit_locations=loc, intervene_on_prompt=True, max_new_tokens=3, do_sample=False
    )
    seq = prompt["input_ids"]
    for _ in range(3):
        logits = reference_logits(model, [(15, at([last], loreft(iv)))], {"input_ids": seq})
        seq = torch.cat([seq, logits[:, -1:].argmax(-1)], 1)
    assert torch.equal(ids, seq)
    with torch.no_grad():
        plain = model(input_ids=seq[:, :-1]).logits
    assert not torch.allclose(logits, plain, atol=1e-3)  # the intervention has an effect
    reft_model.save(save_directory=str(tmp_path / "share"))
    loaded = pyreft.ReftModel.load(str(tmp_path / "share"), model)
    _, now = reft_model(prompt, unit_locations=loc)
    assert torch.equal(loaded(prompt, unit_locations=loc)[1].logits, now.logits)


def test_folder_saved_by_the_original_loads_without_registration(tok, tmp_path):
    """The original's layout (PretrainedConfig JSON naming "<class 'pyreft...'>", one
    intkey_*.bin per trainable intervention, written with pyreft's own state_dict) loads
    through ReftModel.load and reproduces the saving model's logits exactly."""
    import json

    model = tiny(tok, seed=3)
    iv = pyreft.LoreftIntervention(embed_dim=H, low_rank_dimension=RANK, dtype=torch.float32)
    rep = {"layer": LAYER, "component": "block_output", "low_rank_dimension": RANK, "intervention": iv}  # fmt: skip
    reft_model = pyreft.get_reft_model(model, pyreft.ReftConfig(representations=rep))
    key = reft_model.sorted_keys[0]
    config = {
        "intervention_types": ["<class 'pyreft.interventions.LoreftIntervention'>"],
        "representations": [[LAYER, "block_output", "pos", 1, RANK] + [None] * 9],
        "sorted_keys": [key], "intervention_dimensions": [H],
        "intervention_constant_sources": [True], "mode": "parallel",
        "model_type": "<class 'transformers.models.llama.modeling_llama.LlamaForCausalLM'>",
    }  # fmt: skip
    folder = tmp_path / "original"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(iv.state_dict(), folder / f"intkey_{key}.bin")  # the original's writer
    loaded = pyreft.ReftModel.load(str(folder), model)
    assert type(loaded.interventions[key]) is pyreft.LoreftIntervention
    prompt = tok(PROMPTS[2], return_tensors="pt")
    loc = {"sources->base": (None, [[[prompt["input_ids"].shape[-1] - 1]]])}
    assert torch.equal(loaded(prompt, unit_locations=loc)[1].logits, reft_model(prompt, unit_locations=loc)[1].logits)  # fmt: skip


def checkpointed_run(tok, folder, resume=None):
    """Four full-batch steps of DiReFT at layer 1, a Trainer checkpoint every two steps; a
    resumed run starts from another random intervention, so only the checkpoint can fix it."""
    torch.manual_seed(4 if resume is None else 5)
    iv = pyreft.DireftIntervention(embed_dim=H, low_rank_dimension=RANK, dtype=torch.float32)
    rep = {"layer": LAYER, "component": "block_output", "low_rank_dimension": RANK, "intervention": iv}  # fmt: skip
    reft_model = pyreft.get_reft_model(tiny(tok, seed=4), pyreft.ReftConfig(representations=rep))
    data = pyreft.make_last_position_supervised_data_module(tok, reft_model.model, PROMPTS, ANSWERS)  # fmt: skip
    steps = transformers.TrainingArguments(
        output_dir=str(folder), max_steps=4, learning_rate=2e-2, per_device_train_batch_size=3,
        logging_steps=1, report_to=[], use_cpu=True, save_strategy="steps", save_steps=2,
        seed=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer5(model=reft_model, processing_class=tok, args=steps, **data)
    trainer.train(resume_from_checkpoint=resume)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {k: v.clone() for k, v in iv.state_dict().items()}, losses


def test_trainer_resume_from_checkpoint_ends_where_the_uninterrupted_run_ends(tok, tmp_path):
    """A checkpoint holds pyreft's ``intervenable_model/`` (save_intervention), the optimizer,
    scheduler and RNG states; resuming from step 2 reproduces steps 3-4 of the uninterrupted
    run bit for bit. One batch per epoch, so the shuffle of pyreft's own DataLoader (not the
    Trainer's seedable one) draws the same order after a resume. DiReFT, not LoReFT: LoReFT's
    ``state_dict`` keeps only the orthogonal weight, not the parametrization's free parameter
    that the optimizer state refers to (docs/compat.md)."""
    want, losses = checkpointed_run(tok, tmp_path / "full")
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    ckpt = tmp_path / "full" / "checkpoint-2"
    assert sorted(p.name for p in (ckpt / "intervenable_model").iterdir()) == [
        "trainable_interventions.safetensors"
    ]
    got, resumed = checkpointed_run(tok, tmp_path / "resumed", resume=str(ckpt))
    assert resumed == losses  # steps 1-2 from the checkpoint's log, 3-4 recomputed
    for k in want:
        assert torch.equal(got[k], want[k]), k
