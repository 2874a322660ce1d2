"""Packed dataset tracing vs one ``causal_trace`` job per prompt, in the same run.

    python benchmarks/dataset_trace.py [--model tiny|smollm2] [--prompts 20] [--samples 3]
                                       [--kinds block_output] [--batch 10] [--threads N]
                                       [--shared-noise-level]

The first ``--prompts`` facts of examples/facts.jsonl (ragged: 6-14 tokens) are traced twice:
``trace_dataset`` (``--batch`` prompts packed per job: rows of different prompts share layer
calls) and a loop of ``causal_trace`` calls (one job per prompt). Grids are asserted equal
(1e-5); seconds per prompt and the ratio are printed. ``tiny`` is a seeded 4-layer random
llama with the SmolLM2 tokenizer (call overhead dominates); ``smollm2`` the bundled model.
``--shared-noise-level`` computes ROME's noise scale once and passes it to both paths (by
default each ``causal_trace`` call computes it, as a user's loop would).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyvene.analysis.dataset_trace import trace_dataset
from pyvene.analysis.tracing import causal_trace
from pyvene.interventions.basic import embedding_noise_level
from pyvene.zoo import create_llama, load_smollm2, tiny_llama_config

FACTS = Path(__file__).parents[1] / "examples" / "facts.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--kinds", default="block_output")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shared-noise-level", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    if args.model == "tiny":
        cfg = tiny_llama_config(num_hidden_layers=4, hidden_size=64, intermediate_size=128)
        _, tok, model = create_llama(cfg, seed=0, with_tokenizer=True)
    else:
        model, tok = load_smollm2()
    records = [json.loads(line) for line in FACTS.read_text().splitlines()[: args.prompts]]
    records = [
        r for r in records if len(tok(r["target"], add_special_tokens=False)["input_ids"]) == 1
    ]
    kinds = tuple(args.kinds.split(","))
    opts = dict(samples=args.samples, window=10, kinds=kinds, progress=False, seed=0)
    if args.shared_noise_level:
        opts["noise_level"] = embedding_noise_level(model, 3.0)
    lengths = [len(tok(r["prompt"])["input_ids"]) for r in records]
    trace_dataset(model, tok, records[:2], filter_correct=False, **opts)  # warm-up
    t0 = time.perf_counter()
    packed = trace_dataset(
        model, tok, records, filter_correct=False, records_per_batch=args.batch, **opts
    )
    t_packed = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [causal_trace(model, tok, r["prompt"], r["target"], r["subject"], **opts)
              for r in records]  # fmt: skip
    t_single = time.perf_counter() - t0
    for a, b in zip(packed.traces, single):
        for k in kinds:
            torch.testing.assert_close(a.grids[k], b.grids[k], atol=1e-5, rtol=0)
    n = len(records)
    print(f"model {args.model}, {n} prompts of {min(lengths)}-{max(lengths)} tokens, "
          f"{args.samples} samples, kinds {','.join(kinds)}, {args.batch} prompts per job, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"one job per prompt: {t_single / n:.3f} s/prompt ({t_single:.1f} s)")
    print(f"packed dataset job: {t_packed / n:.3f} s/prompt ({t_packed:.1f} s)")
    print(f"ratio: {t_single / t_packed:.2f}x less time per prompt packed")


if __name__ == "__main__":
    main()
