"""Where a single-prompt ``causal_trace`` spends its time: the bound on what packing can save.

    python benchmarks/trace_breakdown.py [--kinds block_output] [--prompts 7] [--threads 1]

Profiles ``causal_trace`` on the first facts of examples/facts.jsonl with the bundled SmolLM2
(after one warm-up trace) and splits the time into the sweep rows' layer calls
(``LayerStack.run_layer``), the rows' final norm + LM head (``LayerStack.logits``), the clean and
corrupted collection forwards (``cells.collect``) and everything else. Packing prompts into one
job (``trace_dataset``) runs exactly the same rows, so it can only save the rest: the printed
bound is ``total / row compute``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

import torch

from pyvene.analysis.tracing import causal_trace
from pyvene.interventions.basic import embedding_noise_level
from pyvene.zoo import load_smollm2

FACTS = Path(__file__).parents[1] / "examples" / "facts.jsonl"


def cumulative(stats: dict, suffix: str, name: str) -> float:
    """Cumulative seconds of every profiled function ``name`` defined in a file ending ``suffix``."""
    return sum(v[3] for (file, _, fn), v in stats.items() if fn == name and file.endswith(suffix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="block_output")
    parser.add_argument("--prompts", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model, tok = load_smollm2()
    records = [json.loads(line) for line in FACTS.read_text().splitlines()[: args.prompts + 1]]
    opts = dict(samples=3, window=10, kinds=tuple(args.kinds.split(",")), progress=False, seed=0)
    opts["noise_level"] = embedding_noise_level(model, 3.0)

    def trace(r: dict) -> None:
        causal_trace(model, tok, r["prompt"], subject=r["subject"], target=r["target"], **opts)

    trace(records[0])  # warm-up
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for record in records[1:]:
        trace(record)
    profile.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profile).stats
    parts = {
        "sweep rows: layer calls": cumulative(stats, "analysis/stack.py", "run_layer"),
        "sweep rows: final norm + LM head": cumulative(stats, "analysis/stack.py", "logits"),
        "clean + corrupted collection": cumulative(stats, "analysis/cells.py", "collect"),
    }
    parts["everything else"] = total - sum(parts.values())
    print(
        f"{len(records) - 1} prompts, kinds {args.kinds}, {args.threads} thread(s): {total:.1f} s"
    )
    for name, seconds in parts.items():
        print(f"  {name}: {seconds:.1f} s ({100 * seconds / total:.1f}%)")
    rows = parts["sweep rows: layer calls"] + parts["sweep rows: final norm + LM head"]
    print(
        f"rows (the same in a packed job): {100 * rows / total:.1f}% -> packing saves at most "
        f"{total / rows:.2f}x"
    )


if __name__ == "__main__":
    main()
