"""A dataset trace over 2 processes (torch.distributed, gloo on CPU) equals 1 process:
records sharded across ranks, results gathered on rank 0, in memory and through a shared
run folder."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

zoo = pytest.importorskip("pyvene.zoo")

FACTS = [
    ("The Eiffel Tower is in", "The Eiffel Tower", " Paris"),
    ("Rome is the capital of", "Rome", " Italy"),
    ("Toyota was founded in the country of", "Toyota", " Japan"),
]
OPTS = dict(samples=2, window=2, noise_level=0.5, seed=3, progress=False,
            kinds=("block_output", "mlp_output"), filter_correct=False, records_per_batch=1)  # fmt: skip


def _grids(res) -> dict[str, torch.Tensor]:
    out = {f"{i}/{k}": t.grids[k] for i, t in zip(res.indices, res.traces) for k in t.grids}
    out["aie"] = res.aie["block_output"]
    return out


def _worker(rank: int, folder: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    from pyvene.analysis.dataset_trace import trace_dataset

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2
    )
    try:
        _, tok, model = zoo.create_llama(seed=1, with_tokenizer=True)
        seen = []
        mem = trace_dataset(model, tok, FACTS, on_batch=seen.extend, **OPTS)
        run = trace_dataset(model, tok, FACTS, out_dir=f"{folder}/run", **OPTS)
        if rank == 0:
            save_file(_grids(mem), f"{folder}/memory.safetensors")
            save_file(_grids(run), f"{folder}/folder.safetensors")
        else:
            assert mem is None and run is None
        torch.save(torch.tensor(seen), f"{folder}/seen{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path):
    from safetensors.torch import load_file

    from pyvene.analysis.dataset_trace import trace_dataset

    try:
        _, tok, model = zoo.create_llama(seed=1, with_tokenizer=True)
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))
    want = _grids(trace_dataset(model, tok, FACTS, **OPTS))
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=2, join=True)
    seen = [torch.load(tmp_path / f"seen{r}.pt", weights_only=True).tolist() for r in (0, 1)]
    assert seen == [[0, 2], [1]]  # records sharded across the ranks
    for name in ("memory", "folder"):
        got = load_file(str(tmp_path / f"{name}.safetensors"))
        assert set(got) == set(want)
        for key in want:
            torch.testing.assert_close(got[key], want[key], atol=1e-6, rtol=0)
