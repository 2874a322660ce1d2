"""ROME-style causal tracing on the bundled SmolLM2, as a library call.

    python examples/causal_tracing.py [out.png]

Corrupts "The Eiffel Tower" with 3x-embedding-std Gaussian noise (10 seeded samples), restores
clean hidden states / 10-layer MLP runs / 10-layer attention runs one (layer, token) at a time,
and plots p(" Paris") for each. All cells of a grid run as one batched job.
"""

from __future__ import annotations

import sys

import torch

from pyvene.analysis.plots import plot_trace
from pyvene.analysis.tracing import causal_trace
from pyvene.zoo import load_smollm2


def main(out: str = "causal_trace.png") -> None:
    torch.set_grad_enabled(False)
    model, tokenizer = load_smollm2()
    result = causal_trace(
        model, tokenizer, "The Eiffel Tower is in the city of", " Paris",
        subject="The Eiffel Tower", samples=10, window=10, seed=0,
    )  # fmt: skip
    print(f"p(Paris): clean {result.clean_prob:.3f}, corrupted {result.corrupted_prob:.3f}")
    grid = result.grids["block_output"]
    subject_end = result.subject[1]  # grid is (layers, tokens); argmax of the subject columns
    layer, token = divmod(int(grid[:, :subject_end].argmax()), subject_end)
    print(f"strongest subject site: token {result.tokens[token]!r} at layer {layer}")
    late = int(grid[:, -1].argmax())
    print(f"strongest last-token site: layer {late} (p={grid[late, -1]:.3f})")
    plot_trace(result, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
