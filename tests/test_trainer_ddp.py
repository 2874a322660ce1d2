"""The HF Trainer trains an IntervenableModel on 2 gloo processes exactly as on 1 process with
the combined batch (Trainer wraps it in DistributedDataParallel through accelerate), and a run
resumed from a Trainer checkpoint ends where the uninterrupted run ends."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
import transformers
from conftest import make_llama
from safetensors.torch import load_file, save_file
from trainer_helpers import Data, InterventionTrainer

import pyvene as pv
from pyvene.zoo import load_smollm2_tokenizer

WORLD, EPOCHS, PER_DEVICE = 2, 4, 2


def make_pvm() -> pv.IntervenableModel:
    model = make_llama(seed=3, n_layer=2)
    rep = {"layer": 1, "component": "block_output", "low_rank_dimension": 4,
           "intervention_type": pv.LoRAIntervention}  # fmt: skip
    torch.manual_seed(0)
    pvm = pv.IntervenableModel(rep, model)
    with torch.no_grad():  # LoRA starts at B = 0: give it a start where A gets gradients too
        pvm.interventions[0].lora_B.weight.normal_(0, 0.1)
    return pvm


def train(folder: str, batch: int, epochs: int = EPOCHS, resume: bool = False, save_steps=0):
    pvm = make_pvm()
    args = transformers.TrainingArguments(
        output_dir=folder, num_train_epochs=epochs, per_device_train_batch_size=batch,
        learning_rate=0.2, optim="sgd", lr_scheduler_type="constant", use_cpu=True,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None, report_to=[], remove_unused_columns=False, disable_tqdm=True,
        seed=0, logging_steps=1, save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
    )  # fmt: skip
    trainer = InterventionTrainer(
        model=pvm,
        args=args,
        train_dataset=Data(WORLD * PER_DEVICE),
        processing_class=load_smollm2_tokenizer(),
    )
    trainer.train(resume_from_checkpoint=resume or None)
    weights = {
        k: v.detach().clone().contiguous() for k, v in pvm.interventions[0].state_dict().items()
    }
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return weights, losses, pvm


def _worker(rank: int, folder: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))  # fmt: skip
    torch.set_num_threads(1)
    weights, losses, _ = train(f"{folder}/run", PER_DEVICE)
    save_file(weights, f"{folder}/weights{rank}.safetensors")
    with open(f"{folder}/losses{rank}.txt", "w") as f:
        f.write(" ".join(map(str, losses)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trainer_on_two_processes_equals_one_process_on_the_combined_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path), free_port()), nprocs=WORLD, join=True)
    want, losses, pvm = train(str(tmp_path / "single"), WORLD * PER_DEVICE)
    start = make_pvm().interventions[0].state_dict()
    assert any(not torch.equal(want[k], start[k]) for k in want)  # training moved the weights
    assert losses[-1] < losses[0], losses
    for rank in range(WORLD):
        got = load_file(str(tmp_path / f"weights{rank}.safetensors"))
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
    # Trainer logs the loss averaged over ranks: the combined batch's loss
    logged = [float(x) for x in (tmp_path / "losses0.txt").read_text().split()]
    torch.testing.assert_close(torch.tensor(logged), torch.tensor(losses), rtol=1e-5, atol=1e-6)
    fresh = make_llama(seed=3, n_layer=2).state_dict()
    for n, p in pvm.model.named_parameters():  # the model itself never trains
        assert torch.equal(p, fresh[n]), n


def test_trainer_resumes_from_its_checkpoint(tmp_path):
    want, _, _ = train(str(tmp_path / "whole"), WORLD * PER_DEVICE)
    train(str(tmp_path / "part"), WORLD * PER_DEVICE, epochs=2, save_steps=2)
    assert (tmp_path / "part" / "checkpoint-2").is_dir()
    got, _, _ = train(str(tmp_path / "part"), WORLD * PER_DEVICE, resume=True)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
