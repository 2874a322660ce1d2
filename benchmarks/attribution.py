"""Attribution patching (AtP, AtP*) vs exact patching on the bundled SmolLM2, IOI pair.

Costs in batch-1 forwards of the prompt (full logits, as a user calls the model), each
measured piece timed between two series of such forwards so both see the same machine load
(medians over ``--repeats``):

1. AtP of every cell of five components at once: 270 heads and 30 x 1536 MLP neurons (all
   positions), block / attention / MLP outputs per position; then MLP neurons per position
   (30 x 1536 x T) alone;
2. AtP* (QK fix + GradDrop) of heads, query heads and key heads (all positions);
3. the exact head grid (``head_sweep``, batched engine) and AtP / AtP* of the same grid, with
   Spearman and top-10 recall against it;
4. the exact per-neuron sweep, extrapolated from ``--neuron-cells`` neuron cells timed through
   the packed exact runner (the one ``verify=`` uses) to all 30 x 1536 x T cells.

Usage: ``python benchmarks/attribution.py [--threads N] [--repeats R] [--neuron-cells N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pyvene.analysis import head_sweep, logit_difference
from pyvene.analysis.attribution import attribution_patching
from pyvene.analysis.attribution_verify import CellSpec, exact_effects, spearman, top_k_recall
from pyvene.analysis.tracing import target_token_id
from pyvene.zoo import load_smollm2

CLEAN = "When John and Mary went to the store, Mary gave a bottle to"
CORRUPT = "When John and Mary went to the store, John gave a bottle to"
HEADS = "head_attention_value_output"


def forward_median(model, ids, n: int = 3) -> tuple[float, float]:
    """Median wall-clock and process-CPU seconds of ``n`` batch-1 full-logit forwards."""
    wall, cpu = [], []
    with torch.no_grad():
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            model(ids)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


class Cost(float):
    """Forward-equivalents by wall clock (the float) and by this process's CPU time
    (``.cpu``, less sensitive to other processes taking the cores); prints both."""

    cpu: float

    def __new__(cls, wall: float, cpu: float) -> Cost:
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj

    def __format__(self, spec: str) -> str:
        return f"{float(self):{spec}} (CPU time: {self.cpu:{spec}})"


def count_passes(model, job) -> tuple[int, int]:
    """(model forwards, autograd backward calls) of one run of ``job``, counted by a plain
    pre-hook on the model and a wrapper around ``torch.autograd.grad``."""
    n = {"fwd": 0, "bwd": 0}
    grad = torch.autograd.grad

    def counted(*args, **kwargs):
        n["bwd"] += 1
        return grad(*args, **kwargs)

    handle = model.register_forward_pre_hook(lambda *_: n.__setitem__("fwd", n["fwd"] + 1))
    torch.autograd.grad = counted
    try:
        job()
    finally:
        handle.remove()
        torch.autograd.grad = grad
    return n["fwd"], n["bwd"]


def measure(model, ids, job, repeats: int):
    """(result, median seconds, median forwards as a :class:`Cost`) of ``job`` over
    ``repeats`` runs, each divided by the forwards timed right before and after it."""
    secs, fwds, cpus, result = [], [], [], None
    for _ in range(repeats):
        before = forward_median(model, ids)
        t0, c0 = time.perf_counter(), time.process_time()
        result = job()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        after = forward_median(model, ids)
        secs.append(dt)
        fwds.append(dt / ((before[0] + after[0]) / 2))
        cpus.append(dc / ((before[1] + after[1]) / 2))
    return result, statistics.median(secs), Cost(statistics.median(fwds), statistics.median(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--neuron-cells", type=int, default=64)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_smollm2()
    clean = tok(CLEAN, return_tensors="pt")["input_ids"]
    dirty = tok(CORRUPT, return_tensors="pt")["input_ids"]
    metric = logit_difference(target_token_id(tok, " John"), target_token_id(tok, " Mary"))
    n_layers, seq = model.config.num_hidden_layers, clean.shape[1]
    forward_median(model, clean)  # warm up
    print(f"torch threads {torch.get_num_threads()}, {n_layers} layers, {seq} tokens")

    comps = [HEADS, "mlp_activation", "block_output", "attention_output", "mlp_output"]

    def atp_all():
        return attribution_patching(model, dirty, clean, metric, comps, per_position=None,
                                    neurons=("mlp_activation",), progress=False)  # fmt: skip

    n_fwd, n_bwd = count_passes(model, atp_all)
    print(f"AtP passes: {n_fwd} model forward(s) (base and source rows batched), {n_bwd} "
          "backward(s)")  # fmt: skip
    res, sec, fwd = measure(model, clean, atp_all, args.repeats)
    res_n = attribution_patching(model, dirty, clean, metric, "mlp_activation",
                                 per_position=True, progress=False)  # fmt: skip
    n_cells = sum(v.numel() for v in res.values.values())
    print(f"AtP, all cells of {len(comps)} components ({n_cells} cells): {sec:.2f} s, "
          f"{fwd:.2f} forwards")  # fmt: skip
    _, sec_n, fwd_n = measure(model, clean, lambda: attribution_patching(
        model, dirty, clean, metric, "mlp_activation", per_position=True, progress=False),
        args.repeats)  # fmt: skip
    neuron_cells = res_n["mlp_activation"].numel()
    print(f"AtP, MLP neurons per position ({neuron_cells} cells): {sec_n:.2f} s, "
          f"{fwd_n:.2f} forwards")  # fmt: skip

    qk = [HEADS, "head_query_output", "head_key_output"]
    _, sec_s, fwd_s = measure(model, clean, lambda: attribution_patching(
        model, dirty, clean, metric, qk, method="atp*", progress=False), args.repeats)  # fmt: skip
    print(f"AtP* (QK fix + GradDrop), heads + query heads + key heads: {sec_s:.2f} s, "
          f"{fwd_s:.2f} forwards (target <= 3 + {n_layers}/4 = {3 + n_layers / 4:.1f})")  # fmt: skip

    exact, sec_e, fwd_e = measure(model, clean, lambda: head_sweep(
        model, dirty, clean, metric, progress=False), args.repeats)  # fmt: skip
    want = exact[HEADS] - exact.base_value
    for method in ("atp", "atp*"):
        r, sec_m, fwd_m = measure(model, clean, lambda m=method: attribution_patching(
            model, dirty, clean, metric, HEADS, method=m, progress=False), args.repeats)  # fmt: skip
        est = r[HEADS]
        print(f"{method} head grid: {sec_m:.2f} s ({fwd_m:.2f} fwd) vs exact head_sweep "
              f"{sec_e:.2f} s ({fwd_e:.2f} fwd): {sec_e / sec_m:.1f}x in seconds, "
              f"{fwd_e / fwd_m:.1f}x in forwards (CPU time {fwd_e.cpu / fwd_m.cpu:.1f}x); spearman "
              f"{spearman(est, want):.3f}, exact top-10 in top-10 {top_k_recall(est, want, 10):.2f}, "
              f"in top-20 {top_k_recall(est, want, 10, 20):.2f}")  # fmt: skip

    grid = res_n["mlp_activation"]
    order = grid.abs().flatten().topk(args.neuron_cells).indices
    specs = []
    for i in order.tolist():
        ly, u, p = (int(x) for x in torch.unravel_index(torch.tensor(i), grid.shape))
        specs.append(CellSpec("mlp_activation", ly, u, (p,), True))
    exact_n, sec_x, fwd_x = measure(model, clean, lambda: exact_effects(
        model, dirty, clean, metric, specs), args.repeats)  # fmt: skip
    per_cell = sec_x / len(specs)
    cells_fwd = Cost(fwd_x / len(specs) * neuron_cells, fwd_x.cpu / len(specs) * neuron_cells)
    print(f"exact neurons: {len(specs)} cells in {sec_x:.2f} s ({fwd_x / len(specs):.3f} fwd/cell);"
          f" all {neuron_cells} cells extrapolated {per_cell * neuron_cells:.0f} s, "
          f"{cells_fwd:.0f} forwards = {cells_fwd / fwd_n:.0f}x the AtP neuron attribution "
          f"(CPU time: {cells_fwd.cpu / fwd_n.cpu:.0f}x)")  # fmt: skip
    est_top = grid.flatten()[order]
    print(f"  top-{len(specs)} neuron cells: spearman {spearman(est_top, exact_n):.3f}, sign "
          f"agreement {(torch.sign(est_top) == torch.sign(exact_n)).float().mean():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
