"""Overhead of an intervened forward on the bundled SmolLM2-135M, as ratios measured in one
run (no timing assertions anywhere in the tests).

  1. one Vanilla patch at layer 15 (last position), batch 1 and batch 16, vs TWO bare forwards
     (the cost of a source run plus a base run done naively);
  2. Collect at every layer vs one forward with output_hidden_states=True.

Run: ``.venv/bin/python benchmarks/overhead.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import pyvene as pv


def best_of(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tok = pv.load_smollm2()
    prompts = ["The Colosseum is in the city of", "The Eiffel Tower is in the city of"]
    print(
        f"machine: {platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, torch {torch.__version__}"
    )
    rows = []
    with torch.no_grad():
        for batch in (1, 16):
            # same-length prompts so source and base can share a batch
            base = tok([prompts[0]] * batch, return_tensors="pt")
            source = tok(["The Louvre Museum is in the city of"] * batch, return_tensors="pt")
            assert base["input_ids"].shape == source["input_ids"].shape
            last = base["input_ids"].shape[1] - 1
            pvm = pv.IntervenableModel({"layer": 15, "component": "block_output"}, model)
            bare = best_of(lambda: model(**base), args.repeats)
            patched = best_of(lambda: pvm(base, [source], {"sources->base": last}), args.repeats)
            rows.append(
                (f"Vanilla patch @15, batch {batch}", patched / (2 * bare), "2 bare forwards")
            )
            two_pass = pv.IntervenableModel(
                {"layer": 15, "component": "block_output"}, model, batch_sources=False
            )
            t2 = best_of(lambda: two_pass(base, [source], {"sources->base": last}), args.repeats)
            rows.append((f"  early-stopped source run, batch {batch}", t2 / (2 * bare), "2 bare"))
            one_pass = pv.IntervenableModel(
                {"layer": 15, "component": "block_output"}, model, batch_sources=True
            )
            t1 = best_of(lambda: one_pass(base, [source], {"sources->base": last}), args.repeats)
            rows.append((f"  one batched pass, batch {batch}", t1 / (2 * bare), "2 bare"))
        base = tok(prompts[1], return_tensors="pt")
        n = model.config.num_hidden_layers
        collect = pv.IntervenableModel(
            [{"layer": i, "component": "block_output", "intervention_type": pv.CollectIntervention}
             for i in range(n)], model,
        )  # fmt: skip
        hs = best_of(lambda: model(**base, output_hidden_states=True), args.repeats)
        col = best_of(lambda: collect(base), args.repeats)
        rows.append(("Collect all 30 layers, batch 1", col / hs, "forward w/ hidden states"))
        locs = {"base": [[[base["input_ids"].shape[1] - 1]]] * n}
        col_loc = best_of(lambda: collect(base, unit_locations=locs), args.repeats)
        rows.append(("Collect all 30 layers @last pos", col_loc / hs, "forward w/ hidden states"))
    for name, ratio, unit in rows:
        print(f"{name:<45} {ratio:6.3f} x {unit}")


if __name__ == "__main__":
    main()
