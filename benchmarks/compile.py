"""An intervened call on a torch.compile'd model vs the same call eager, both after warm-up,
as ratios measured in one run (calls of the sides alternated, medians); also the plain
(un-intervened) compiled vs eager call, and dynamo's count of compiled frames during the timed
calls (0 = no recompiles).

Model: a random Llama (hidden 256, 4 layers, 4 heads, vocab 2000), batch 4 x 64 tokens;
AdditionIntervention (a fresh steering vector per call) on block_output of layer 2.

Run: ``.venv/bin/python benchmarks/compile.py [--backend inductor] [--calls N]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch._dynamo.utils import counters
from transformers import LlamaForCausalLM

import pyvene as pv
from pyvene.zoo import tiny_llama_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    cfg = tiny_llama_config(
        hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, head_dim=64, vocab_size=2000,
    )  # fmt: skip
    eager_model = LlamaForCausalLM(cfg).eval().to(args.device)
    compiled = torch.compile(eager_model, backend=args.backend)
    rep = {"layer": 2, "component": "block_output", "intervention_type": pv.AdditionIntervention}
    eager_pvm = pv.IntervenableModel(rep, eager_model)
    compiled_pvm = pv.IntervenableModel(rep, compiled)
    base = {"input_ids": torch.randint(1, 2000, (4, 64), device=args.device)}
    vectors = [torch.randn(256, device=args.device) for _ in range(args.calls + 3)]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def timed(fn) -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    sides = {
        "eager intervened": lambda v: eager_pvm(base, source_representations=v),
        "compiled intervened": lambda v: compiled_pvm(base, source_representations=v),
        "eager plain": lambda v: eager_model(**base),
        "compiled plain": lambda v: compiled(**base),
    }
    with torch.no_grad():
        start = time.perf_counter()
        for v in vectors[:3]:  # warm-up (compiles)
            for fn in sides.values():
                fn(v)
        warm_s = time.perf_counter() - start
        frames = counters["frames"]["total"]
        times: dict[str, list[float]] = {k: [] for k in sides}
        for v in vectors[3:]:
            for name, fn in sides.items():
                times[name].append(timed(lambda fn=fn, v=v: fn(v)))
        new_frames = counters["frames"]["total"] - frames
        got = compiled_pvm(base, source_representations=vectors[0])[1].logits
        want = eager_pvm(base, source_representations=vectors[0])[1].logits
    med = {k: statistics.median(t) * 1e3 for k, t in times.items()}
    print(
        f"machine: {platform.processor() or platform.machine()}, device {args.device}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), backend {args.backend}"
    )
    print(f"warm-up (compile) {warm_s:.1f} s; frames compiled during {args.calls} timed calls "
          f"per side: {new_frames}; max |compiled - eager| {float((got - want).abs().max()):.2e}")  # fmt: skip
    for name, ms in med.items():
        print(f"  {name:20s} {ms:8.2f} ms (median of {args.calls})")
    print(f"compiled/eager, intervened: {med['compiled intervened'] / med['eager intervened']:.3f}")
    print(f"compiled/eager, plain:      {med['compiled plain'] / med['eager plain']:.3f}")
    print(f"intervened/plain, compiled: {med['compiled intervened'] / med['compiled plain']:.3f}")


if __name__ == "__main__":
    main()
