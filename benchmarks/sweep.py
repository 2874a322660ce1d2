"""Batched patching sweeps vs the per-cell loop, on the bundled SmolLM2 (CPU by default).

1. ROME block_output causal-tracing grid (30 layers x 9 tokens, one noise sample):
   ``patching_sweep`` vs the seeds' Workflow 1 loop (one IntervenableModel + forward per cell).
2. Attention-head grid (30 layers x 9 heads, all positions) on the IOI pair, logit difference.

Everything is expressed in units of a batch-1 forward of the prompt (full logits, as a user
calls the model), timed right before and after each measured piece so that both see the same
machine load. Each figure is given as the median over ``--repeats`` runs (the loop: over
blocks of 15 cells) and as the best (fastest run over fastest forward: the least disturbed
by other load). The cells of both methods are asserted equal (1e-5). The original pyvene's per-cell
loop costs 2.1-2.2 forwards per cell; the speedup against a 2.15-forward loop is printed too.
Usage: ``python benchmarks/sweep.py [--threads N] [--repeats R] [--loop-cells N]``.
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

ORIGINAL_LOOP = 2.15  # forwards per cell of the original pyvene's per-cell loop


def forward_times(model, inputs, repeats: int = 5) -> list[float]:
    model(**inputs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(**inputs)
        times.append(time.perf_counter() - t0)
    return times


class Timer:
    """Times jobs in forwards: each job between two series of batch-1 forwards of the
    prompt. ``median``: the median over jobs of seconds / (mean of the two forward medians)
    per unit; ``best``: the fastest job over the fastest forward, per unit (the figure least
    disturbed by other load on the machine)."""

    def __init__(self, model, inputs) -> None:
        self.model, self.inputs = model, inputs
        self.ratios: list[float] = []
        self.jobs: list[float] = []
        self.forwards: list[float] = []

    def __call__(self, job, units: int):
        before = forward_times(self.model, self.inputs)
        t0 = time.perf_counter()
        result = job()
        seconds = (time.perf_counter() - t0) / units
        after = forward_times(self.model, self.inputs)
        fwd = (statistics.median(before) + statistics.median(after)) / 2
        self.ratios.append(seconds / fwd)
        self.jobs.append(seconds)
        self.forwards += before + after
        return result, seconds / fwd

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def best(self) -> float:
        return min(self.jobs) / min(self.forwards)


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


def batched(job, model, inputs, cells, repeats) -> tuple[object, Timer]:
    timer = Timer(model, inputs)
    for _ in range(repeats):
        result, per_cell_fwd = timer(job, cells)
        print(f"  batched run: {timer.jobs[-1] * cells:.2f} s, {per_cell_fwd:.4f} forwards/cell",
              flush=True)  # fmt: skip
    return result, timer


def looped(todo, run_one, model, inputs, block: int = 15) -> tuple[dict, Timer]:
    """The per-cell loop over ``todo``, timed in blocks of ``block`` cells."""
    values, timer = {}, Timer(model, inputs)
    for i in range(0, len(todo), block):
        part = todo[i : i + block]
        got, _ = timer(lambda part=part: {key: run_one(*key) for key in part}, len(part))
        values.update(got)
    return values, timer


def bench_trace(model, tok, repeats: int, loop_cells: int | None) -> None:
    prompt, target, subject = "The Eiffel Tower is in the city of", " Paris", "The Eiffel Tower"
    ids = torch.tensor([tok(prompt)["input_ids"]])
    span = subject_span(tok, prompt, subject)
    noised = corrupt_embeddings(model, ids, span, 1, embedding_noise_level(model), seed=0)
    base, source = {"inputs_embeds": noised}, {"input_ids": ids}
    metric = token_probability(target_token_id(tok, target))
    n_layers, seq = model.config.num_hidden_layers, ids.shape[1]
    cells = n_layers * seq
    print(f"causal trace block_output: {cells} cells ({n_layers} layers x {seq} tokens)")
    res, fast = batched(
        lambda: patching_sweep(model, base, source, metric, "block_output", progress=False),
        model, source, cells, repeats,
    )  # fmt: skip
    grid = res["block_output"]
    todo = [(ly, p) for ly in range(n_layers) for p in range(seq)]
    if loop_cells:
        todo = todo[:: max(1, len(todo) // loop_cells)]
    values, loop = looped(
        todo,
        lambda ly, p: per_cell(model, base, source, "block_output", ly, (p,), None, metric),
        model, source,
    )  # fmt: skip
    for (ly, p), want in values.items():
        assert abs(grid[ly, p].item() - want) <= 1e-5, (ly, p, grid[ly, p].item(), want)
    report(cells, fast, loop, len(todo))


def bench_heads(model, tok, repeats: int, loop_cells: int | None) -> None:
    clean = tok("When John and Mary went to the store, Mary gave a bottle to", return_tensors="pt")
    dirty = tok("When John and Mary went to the store, John gave a bottle to", return_tensors="pt")
    metric = logit_difference(target_token_id(tok, " John"), target_token_id(tok, " Mary"))
    n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
    seq = clean["input_ids"].shape[1]
    cells = n_layers * n_heads
    print(f"IOI heads, all positions: {cells} cells ({n_layers} layers x {n_heads} heads, "
          f"{seq} tokens)")  # fmt: skip
    res, fast = batched(
        lambda: head_sweep(model, dirty["input_ids"], clean["input_ids"], metric, progress=False),
        model, clean, cells, repeats,
    )  # fmt: skip
    grid = res["head_attention_value_output"]
    todo = [(ly, h) for ly in range(n_layers) for h in range(n_heads)]
    if loop_cells:
        todo = todo[:: max(1, len(todo) // loop_cells)]
    comp = "head_attention_value_output"
    values, loop = looped(
        todo,
        lambda ly, h: per_cell(model, dirty, clean, comp, ly, tuple(range(seq)), h, metric),
        model, clean,
    )  # fmt: skip
    for (ly, h), want in values.items():
        assert abs(grid[ly, h].item() - want) <= 1e-5 * max(1.0, abs(want)), (ly, h, want)
    report(cells, fast, loop, len(todo))
    print(f"  clean logit diff {res.source_value:.3f}, corrupted {res.base_value:.3f}")


def report(cells: int, fast: Timer, loop: Timer, loop_cells: int) -> None:
    print(f"  batch-1 forward of the prompt: {statistics.median(fast.forwards) * 1e3:.1f} ms "
          f"(median), {min(fast.forwards) * 1e3:.1f} ms (best)")  # fmt: skip
    print(f"  batched sweep: {statistics.median(fast.jobs) * cells:.2f} s (median); "
          f"{fast.median:.4f} forwards/cell (median), {fast.best:.4f} (best)")  # fmt: skip
    print(f"  per-cell loop over {loop_cells} cells: {loop.median:.2f} forwards/cell "
          f"(median over blocks), {loop.best:.2f} (best)")  # fmt: skip
    print(f"  speedup vs this loop: {loop.median / fast.median:.1f}x (medians), "
          f"{loop.best / fast.best:.1f}x (bests); vs a {ORIGINAL_LOOP}-forward/cell loop "
          f"(original pyvene): {ORIGINAL_LOOP / fast.median:.1f}x (median), "
          f"{ORIGINAL_LOOP / fast.best:.1f}x (best)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5, help="batched runs (median)")
    parser.add_argument("--loop-cells", type=int, default=None,
                        help="loop over about this many cells (default: all)")  # fmt: skip
    parser.add_argument("--only", choices=["trace", "heads"], default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    model, tok = load_smollm2()
    print(f"torch threads {torch.get_num_threads()}, model {model.config.model_type}, "
          f"{model.config.num_hidden_layers} layers, attn {model.config._attn_implementation}")  # fmt: skip
    if args.only in (None, "trace"):
        bench_trace(model, tok, args.repeats, args.loop_cells)
    if args.only in (None, "heads"):
        bench_heads(model, tok, args.repeats, args.loop_cells)


if __name__ == "__main__":
    main()
