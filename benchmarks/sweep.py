"""Batched patching sweeps vs the per-cell loop, on the bundled SmolLM2 (CPU by default).

1. ROME block_output causal-tracing grid (30 layers x 9 tokens, one noise sample):
   ``patching_sweep`` vs the seeds' Workflow 1 loop (one IntervenableModel + forward per cell).
2. Attention-head grid (30 layers x 9 heads, all positions) on the IOI pair, logit difference.

Both are also expressed in units of a batch-1 forward of the prompt. The cells of both methods
are asserted equal (1e-5). Usage: ``python benchmarks/sweep.py [--threads N] [--loop-heads all]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pyvene as pv
from pyvene.analysis import head_sweep, logit_difference, patching_sweep, token_probability
from pyvene.analysis.tracing import corrupt_embeddings, subject_span, target_token_id
from pyvene.interventions.basic import embedding_noise_level
from pyvene.zoo import load_smollm2


def forward_time(model, inputs, repeats: int = 15) -> float:
    for _ in range(3):
        model(**inputs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(**inputs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed(job, model, inputs, repeats: int = 2):
    """Best of ``repeats`` runs of ``job``; the batch-1 forward is timed right before and after
    each run (the mean of the two medians), so both see the same machine load."""
    best = None
    for _ in range(repeats):
        before = forward_time(model, inputs, 7)
        t0 = time.perf_counter()
        result = job()
        seconds = time.perf_counter() - t0
        fwd = (before + forward_time(model, inputs, 7)) / 2
        if best is None or seconds / fwd < best[1] / best[2]:
            best = (result, seconds, fwd)
    return best


def per_cell(model, base, source, comp, layer, positions, head, metric) -> float:
    """The seeds' Workflow 1: a new IntervenableModel and one forward per cell."""
    config = pv.IntervenableConfig(
        representations=[
            pv.RepresentationConfig(
                layer=layer, component=comp, unit="h.pos" if head is not None else "pos",
                intervention_type=pv.VanillaIntervention, max_number_of_units=len(positions),
            )
        ]
    )  # fmt: skip
    intervenable = pv.IntervenableModel(config, model)
    loc = [[[head]], [list(positions)]] if head is not None else [list(positions)]
    _, out = intervenable(
        base=base, sources=[source], unit_locations={"sources->base": ([loc], [loc])}
    )
    return metric(out.logits[:, -1]).item()


def bench_trace(model, tok) -> None:
    prompt, target, subject = "The Eiffel Tower is in the city of", " Paris", "The Eiffel Tower"
    ids = torch.tensor([tok(prompt)["input_ids"]])
    span = subject_span(tok, prompt, subject)
    noised = corrupt_embeddings(model, ids, span, 1, embedding_noise_level(model), seed=0)
    base, source = {"inputs_embeds": noised}, {"input_ids": ids}
    metric = token_probability(target_token_id(tok, target))
    n_layers, seq = model.config.num_hidden_layers, ids.shape[1]
    cells = n_layers * seq
    grid, batched, fwd = timed(
        lambda: patching_sweep(model, base, source, metric, "block_output", progress=False),
        model, source,
    )  # fmt: skip
    t0 = time.perf_counter()
    loop = torch.tensor(
        [[per_cell(model, base, source, "block_output", ly, (p,), None, metric) for p in range(seq)]
         for ly in range(n_layers)]
    )  # fmt: skip
    looped = time.perf_counter() - t0
    torch.testing.assert_close(grid["block_output"], loop, atol=1e-5, rtol=0)
    report("causal trace block_output", cells, batched, looped, cells, fwd)


def bench_heads(model, tok, loop_cells: str) -> None:
    clean = tok("When John and Mary went to the store, Mary gave a bottle to", return_tensors="pt")
    dirty = tok("When John and Mary went to the store, John gave a bottle to", return_tensors="pt")
    metric = logit_difference(target_token_id(tok, " John"), target_token_id(tok, " Mary"))
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    seq = clean["input_ids"].shape[1]
    cells = n_layers * n_heads
    res, batched, fwd_ioi = timed(
        lambda: head_sweep(model, dirty["input_ids"], clean["input_ids"], metric, progress=False),
        model, clean,
    )  # fmt: skip
    grid = res["head_attention_value_output"]
    todo = [(ly, h) for ly in range(n_layers) for h in range(n_heads)]
    if loop_cells != "all":
        todo = todo[:: max(1, len(todo) // int(loop_cells))]
    t0 = time.perf_counter()
    comp = "head_attention_value_output"
    for ly, h in todo:
        want = per_cell(model, dirty, clean, comp, ly, tuple(range(seq)), h, metric)
        assert abs(grid[ly, h].item() - want) <= 1e-4 * max(1.0, abs(want)), (ly, h, want)
    looped = time.perf_counter() - t0
    report("IOI heads (all positions)", cells, batched, looped, len(todo), fwd_ioi)
    print(f"  clean logit diff {res.source_value:.3f}, corrupted {res.base_value:.3f}")


def report(name, cells, batched, looped, looped_cells, fwd) -> None:
    per_loop = looped / looped_cells
    print(f"{name}: {cells} cells")
    print(f"  batch-1 forward of the prompt: {fwd * 1e3:.1f} ms")
    print(f"  batched sweep: {batched:.2f} s = {batched / cells * 1e3:.2f} ms/cell "
          f"= {batched / cells / fwd:.3f} forwards/cell")  # fmt: skip
    print(f"  per-cell loop: {per_loop * 1e3:.1f} ms/cell = {per_loop / fwd:.2f} forwards/cell "
          f"(measured on {looped_cells} cells)")  # fmt: skip
    print(f"  speedup: {per_loop * cells / batched:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--loop-heads", default="all", help="'all' or a number of loop cells")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model, tok = load_smollm2()
    print(f"torch threads {torch.get_num_threads()}, model {model.config.model_type}, "
          f"{model.config.num_hidden_layers} layers, attn {model.config._attn_implementation}")  # fmt: skip
    bench_trace(model, tok)
    bench_heads(model, tok, args.loop_heads)


if __name__ == "__main__":
    main()
