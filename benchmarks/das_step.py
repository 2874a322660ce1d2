"""Cost of one DAS training step vs a plain forward+backward, on the bundled SmolLM2-135M.

One step = intervened forward (source + base) + backward + Adam step of a rank-1
LowRankRotatedSpaceIntervention on ``block_output`` of a middle layer (15 of 30) at the last
position, batch 16. The reference is a plain ``model(**base)`` forward + backward of a loss on
the last-position logits with the weights frozen except for a gradient w.r.t. the input
embeddings (so the backward traverses the whole model, as the DAS backward must down to
layer 15 only). Prints median seconds per step and two ratios: DAS / plain, and DAS / (2 x
plain), the normalization of benchmarks/overhead.py (a patched run against the two full passes,
source and base, that a source-based intervention implies). The original pyvene's 0.75
(issue 3) is in the second normalization: it runs the whole source model with a graph.

    python benchmarks/das_step.py [--batch 16] [--seq 32] [--steps 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pyvene as pv
from pyvene.zoo import load_smollm2


def timed(fn, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    model, _ = load_smollm2()
    model.to(args.device)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(0)
    base = {"input_ids": torch.randint(0, vocab, (args.batch, args.seq), generator=g)}
    source = {"input_ids": torch.randint(0, vocab, (args.batch, args.seq), generator=g)}
    base = {k: v.to(args.device) for k, v in base.items()}
    source = {k: v.to(args.device) for k, v in source.items()}
    target = torch.randint(0, vocab, (args.batch,), generator=g).to(args.device)

    config = pv.IntervenableConfig(
        [{"layer": args.layer, "component": "block_output", "low_rank_dimension": 1}],
        intervention_types=pv.LowRankRotatedSpaceIntervention,
    )
    pvm = pv.IntervenableModel(config, model)  # freezes the model
    pvm.set_device(args.device, set_model=False)
    opt = torch.optim.Adam(pvm.get_trainable_parameters(), lr=1e-3)
    last = args.seq - 1
    locs = {"sources->base": ([[[last]] * args.batch], [[[last]] * args.batch])}

    def das_step() -> None:
        out = pvm(base, [source], locs)[1].logits[:, -1]
        loss = torch.nn.functional.cross_entropy(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    emb = model.get_input_embeddings()

    def plain_step() -> None:
        x = emb(base["input_ids"]).detach().requires_grad_(True)
        out = model(inputs_embeds=x).logits[:, -1]
        torch.nn.functional.cross_entropy(out.float(), target).backward()

    t_das = timed(das_step, args.steps)
    t_plain = timed(plain_step, args.steps)
    print(
        f"device={args.device} batch={args.batch} seq={args.seq} layer={args.layer} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"plain forward+backward: {t_plain * 1e3:.1f} ms/step")
    print(f"DAS step (src+base fwd, bwd, Adam): {t_das * 1e3:.1f} ms/step")
    print(f"ratio DAS / plain: {t_das / t_plain:.2f}")
    print(f"ratio DAS / (2 x plain): {t_das / (2 * t_plain):.2f}")


if __name__ == "__main__":
    main()
