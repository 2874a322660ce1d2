"""DDP training of an intervention on 2 gloo processes equals 1-process training on the
combined batch; checkpoint / resume continues it exactly; an intervention wrapped alone in DDP
is refused with a message saying what to wrap."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp
from conftest import ids, make_llama
from safetensors.torch import load_file, save_file

import pyvene as pv

WORLD, STEPS, SAVE_AT, LR = 2, 5, 3, 0.5
LOC = {"sources->base": 4}  # the position whose logits the loss reads


def _pvm():
    model = make_llama(seed=0, n_layer=2)
    rep = {"layer": 1, "component": "block_output", "low_rank_dimension": 2}
    config = pv.IntervenableConfig([rep], intervention_types=pv.LowRankRotatedSpaceIntervention)
    torch.manual_seed(1)
    return pv.IntervenableModel(config, model)


def _data():
    return ids(4, 5, 10)["input_ids"], ids(4, 5, 11)["input_ids"], ids(4, 1, 12)["input_ids"][:, 0]


def _step(module, opt, base, source, labels):
    _, out = module({"input_ids": base}, [{"input_ids": source}], LOC)
    torch.nn.functional.cross_entropy(out.logits[:, -1], labels).backward()
    opt.step()
    opt.zero_grad()


def _weights(pvm):
    return {
        k: v.detach().clone().contiguous() for k, v in pvm.interventions[0].state_dict().items()
    }


def _worker(rank: int, folder: str) -> None:
    dist = torch.distributed
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rdzv", rank=rank, world_size=WORLD
    )
    try:
        base, source, labels = (t[rank * 2 : rank * 2 + 2] for t in _data())
        pvm = _pvm()
        ddp = pv.distributed_model(pvm)
        opt = torch.optim.SGD(ddp.parameters(), lr=LR)
        for step in range(STEPS):
            if step == SAVE_AT and rank == 0:
                pvm.save_intervention(f"{folder}/ckpt")
            dist.barrier()
            _step(ddp, opt, base, source, labels)
        save_file(_weights(pvm), f"{folder}/final{rank}.safetensors")
        resumed = _pvm()  # resume from the checkpoint in a fresh model and optimizer
        resumed.load_intervention(f"{folder}/ckpt")
        ddp2 = pv.distributed_model(resumed)
        opt2 = torch.optim.SGD(ddp2.parameters(), lr=LR)
        for _ in range(STEPS - SAVE_AT):
            _step(ddp2, opt2, base, source, labels)
        save_file(_weights(resumed), f"{folder}/resumed{rank}.safetensors")
        alone = _pvm()
        wrapped = torch.nn.parallel.DistributedDataParallel(alone.interventions[0])
        try:
            _step(alone, torch.optim.SGD(wrapped.parameters(), lr=LR), base, source, labels)
            message = "not refused"
        except pv.DistributedError as err:
            message = str(err)
        with open(f"{folder}/refused{rank}.txt", "w") as f:
            f.write(message)
    finally:
        dist.destroy_process_group()


def test_two_process_ddp_equals_one_process_on_the_combined_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    single = _pvm()
    opt = torch.optim.SGD(single.parameters(), lr=LR)
    start = _weights(single)
    for _ in range(STEPS):
        _step(single, opt, *_data())
    want = _weights(single)
    assert any(not torch.equal(want[k], start[k]) for k in want)  # training moved the weights
    for rank in range(WORLD):
        for name in ("final", "resumed"):
            got = load_file(str(tmp_path / f"{name}{rank}.safetensors"))
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
        refused = (tmp_path / f"refused{rank}.txt").read_text()
        assert "wrapped alone in DistributedDataParallel" in refused
        assert "pv.distributed_model(pvm)" in refused
