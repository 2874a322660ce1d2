"""``pyvene trace --dataset`` / ``pyvene patch --dataset``: run folders written, resumed,
equal to the library calls; the same under ``torchrun -m pyvene`` with 2 processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from pyvene.analysis.dataset_patch import load_patch_dataset, patch_dataset
from pyvene.analysis.dataset_trace import load_trace_dataset, trace_dataset
from pyvene.cli import main

zoo = pytest.importorskip("pyvene.zoo")

FACTS = [
    {"prompt": "The Eiffel Tower is in", "subject": "The Eiffel Tower", "target": " Paris"},
    {"prompt": "Rome is the capital of", "subject": "Rome", "target": "Italy"},
    {"prompt": "Toyota was founded in the country of", "subject": "Toyota", "target": " Japan"},
]
TRACE = ["--samples", "2", "--window", "2", "--kinds", "block_output,mlp_output",
         "--no-progress", "--no-filter", "--batch-records", "2", "--seed", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    try:
        _, tok, model = zoo.create_llama(seed=2, with_tokenizer=True)
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    with open(path / "facts.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in FACTS)
    return path, model, tok


def _parts(run) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in run.glob("part-*")}


def test_trace_dataset_command_resumes(folder, tmp_path, capsys):
    path, model, tok = folder
    run = tmp_path / "run"
    argv = ["trace", "--dataset", str(path / "facts.jsonl"), "--out-dir", str(run),
            "--model", str(path), *TRACE]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "traced 3 records; skipped 0" in out and "last subject token (3)" in out
    assert (run / "figure2.png").stat().st_size > 1000
    want = trace_dataset(model, tok, FACTS, samples=2, window=2, seed=1, filter_correct=False,
                         kinds=("block_output", "mlp_output"), progress=False)  # fmt: skip
    got = load_trace_dataset(run)
    assert got.indices == want.indices == [0, 1, 2]
    for k in want.kinds:
        torch.testing.assert_close(got.aie[k], want.aie[k], atol=1e-6, rtol=0)
    before = _parts(run)
    assert main(argv) == 0  # everything is stored: nothing is recomputed
    assert _parts(run) == before
    assert main([*argv[:-2], "--seed", "2"]) == 2  # other parameters: a clear error
    assert "other parameters (seed differ)" in capsys.readouterr().err


def test_patch_dataset_command(folder, tmp_path, capsys):
    path, model, tok = folder
    g = torch.Generator().manual_seed(0)
    pairs = []
    for seq in (5, 7):
        base = torch.randint(1, 1000, (seq,), generator=g).tolist()
        src = list(base)
        src[1] += 1
        pairs.append({"base": base, "source": src, "positions": {"S": 1, "END": -1},
                      "target": 11, "foil": 12})  # fmt: skip
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    run = tmp_path / "prun"
    argv = ["patch", "--dataset", str(data), "--out-dir", str(run), "--model", str(path),
            "--components", "block_output,attention_output", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "patched 2 pairs" in capsys.readouterr().out
    want = patch_dataset(model, pairs, components=["block_output", "attention_output"],
                         progress=False)  # fmt: skip
    got = load_patch_dataset(run)
    for comp in want.values:
        torch.testing.assert_close(got.per_example[comp], want.per_example[comp], atol=1e-6,
                                   rtol=0)  # fmt: skip
    assert main(["patch", "--model", str(path)]) == 2
    assert "missing clean, corrupt, --target" in capsys.readouterr().err


def test_torchrun_two_processes_equal_one(folder, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    path, model, tok = folder
    run = tmp_path / "dist"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "pyvene", "trace",
           "--dataset", str(path / "facts.jsonl"), "--out-dir", str(run), "--model", str(path),
           *TRACE]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("traced 3 records") == 1  # rank 0 reports
    want = trace_dataset(model, tok, FACTS, samples=2, window=2, seed=1, filter_correct=False,
                         kinds=("block_output", "mlp_output"), progress=False)  # fmt: skip
    got = load_trace_dataset(run)
    assert got.indices == [0, 1, 2]
    for a, b in zip(got.traces, want.traces):
        for k in want.kinds:
            torch.testing.assert_close(a.grids[k], b.grids[k], atol=1e-6, rtol=0)
