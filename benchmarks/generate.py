"""Overhead of IntervenableModel.generate: 32 greedy new tokens on the bundled SmolLM2-135M
with an AdditionIntervention steering vector (every decoding step, KV cache on) vs plain
model.generate. Prints the median times and their ratio (target <= 1.03x).

    .venv/bin/python benchmarks/generate.py [--repeats 7] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pyvene as pv
from pyvene.zoo import load_smollm2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--layer", type=int, default=15)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, tok = load_smollm2()
    model.generation_config.pad_token_id = tok.eos_token_id
    inputs = tok("The weather today is", return_tensors="pt")
    gen = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": False}
    vec = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    pvm = pv.IntervenableModel(
        {"layer": args.layer, "component": "block_output",
         "intervention_type": pv.AdditionIntervention},
        model,
    )  # fmt: skip

    def plain():
        return model.generate(**inputs, **gen)

    def steered():
        return pvm.generate(inputs, source_representations=vec * 0.5, **gen)

    # alternate single calls so that drifting machine load hits both sides alike
    plain(), steered()  # warm-up
    t_plain, t_steer = [], []
    for _ in range(3 * args.repeats):
        for fn, times in ((plain, t_plain), (steered, t_steer)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    a, b = statistics.median(t_plain), statistics.median(t_steer)
    print(f"device: cpu, threads: {torch.get_num_threads()}, new tokens: {args.new_tokens}")
    print(f"model.generate           {a * 1e3:8.1f} ms")
    print(f"pvm.generate (steering)  {b * 1e3:8.1f} ms")
    print(f"ratio                    {b / a:8.3f}x  (target <= 1.03x)")


if __name__ == "__main__":
    main()
