"""Fast sweep path (layer stack) vs whole-model runs, for every family that declares one.

    python benchmarks/stack_families.py [--seq 12] [--layers 8] [--threads N]

For each model type with a ``StackSpec`` a tiny seeded random model (the test suite's
builders, tests/family_models.py; ``--layers`` rebuilds it deeper from its config, since with
the suite's 2 layers there is almost nothing for the fast path to skip) sweeps a ``block_output`` grid (every layer x every
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
from family_models import build  # noqa: E402


def metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 7].float()


LAYER_FIELDS = ("num_hidden_layers", "n_layer", "num_layers")


def deeper(model: torch.nn.Module, n_layers: int) -> torch.nn.Module:
    """The same tiny architecture rebuilt (seeded) with ``n_layers`` layers; the model as it
    was when its config has no layer-count field it recognises or does not build."""
    config = model.config
    field = next((f for f in LAYER_FIELDS if isinstance(getattr(config, f, None), int)), None)
    if field is None or not n_layers:
        return model
    fields = {**config.to_dict(), field: n_layers}
    for name in ("layer_types",):  # per-layer lists follow the depth
        value = fields.get(name)
        if isinstance(value, list) and value:
            fields[name] = (value * n_layers)[:n_layers]
    try:
        config = type(config).from_dict(fields)
        config._attn_implementation = model.config._attn_implementation
        torch.manual_seed(0)
        return type(model)(config).eval()
    except Exception as exc:  # noqa: BLE001 - report and keep the shallow model
        print(f"  ({type(model).__name__}: kept {getattr(model.config, field)} layers: {exc})")
        return model


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
    parser.add_argument("--layers", type=int, default=8, help="depth to rebuild at (0: as is)")
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
        model = deeper(model.eval(), args.layers)
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
