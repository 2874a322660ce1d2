"""Fast sweep path (layer stack) vs whole-model runs, for every family that declares one.

    python benchmarks/stack_families.py [--seq 12] [--threads N]

For each model type with a ``StackSpec`` a tiny seeded random model (the test suite's
builders, tests/test_families.py) sweeps a ``block_output`` grid (every layer x every
position, one base row, the source differing from position 2 on) with ``method="stack"``
and ``method="full"``; results are asserted equal (1e-4). Each is reported in forwards per
cell: seconds / (cells x one batch-1 forward of the prompt).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from pyvene.analysis.cells import Cell, run_cells
from pyvene.families import FAMILIES

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from test_families import build  # noqa: E402


def metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 7].float()


def seconds(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=12)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    g = torch.Generator().manual_seed(0)
    base = torch.randint(1, 60, (1, args.seq), generator=g)
    source = base.clone()
    source[0, 2:] = torch.randint(1, 60, (args.seq - 2,), generator=g)
    print("| model type | cells | stack fwd/cell | whole-model fwd/cell | ratio |")
    print("|---|---|---|---|---|")
    for model_type in sorted(t for t, f in FAMILIES.items() if f.stack is not None):
        model, _ = build(model_type)
        model.eval()
        n_layers = FAMILIES[model_type].num_layers(model.config)
        cells = [Cell("block_output", (k,), (p,)) for k in range(n_layers)
                 for p in range(args.seq)]  # fmt: skip
        fwd = seconds(lambda: model(input_ids=base), repeats=5)
        out = {}
        for method in ("stack", "full"):
            t = seconds(lambda: out.__setitem__(method, run_cells(
                model, base, source, cells, metric, method=method)[0]))  # fmt: skip
            out[method + "_t"] = t / (len(cells) * fwd)
        torch.testing.assert_close(out["stack"], out["full"], atol=1e-4, rtol=1e-4)
        ratio = out["full_t"] / out["stack_t"]
        print(f"| {model_type} | {len(cells)} | {out['stack_t']:.3f} | {out['full_t']:.3f} "
              f"| {ratio:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
