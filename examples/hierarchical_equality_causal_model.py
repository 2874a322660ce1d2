"""The hierarchical-equality causal model of DAS (Geiger et al., 2023) and its datasets.

Inputs W, X, Y, Z are random entity vectors in [-1, 1]^4 (2 decimals), concatenated into a
16-dim input; WX = (W==X), YZ = (Y==Z); the label is O = (WX==YZ). The balanced sampler draws
fresh entities in one of the four cases ABCD, AABB, AABC, ABCC.

    python examples/hierarchical_equality_causal_model.py
"""

from __future__ import annotations

import time

import torch

from pyvene.causal_datasets import (
    hierarchical_equality_causal_model,
    hierarchical_equality_intervention_id,
)


def show(name: str, setting: dict) -> str:
    return f"{name}: " + " ".join(f"{v}={setting[v]}" for v in "WXYZ")


def main() -> None:
    model, sampler = hierarchical_equality_causal_model(embedding_dim=4, seed=0)
    print("variables:", model.variables, "| inputs:", model.inputs, "| outputs:", model.outputs)
    print("timesteps:", model.timesteps)

    print("\n-- factual examples (input_ids [16], labels [1]) --")
    factual = model.generate_factual_dataset(4, sampler, seed=1, return_tensors=False)
    for ex in factual:
        total = ex["labels"]
        print(show("input", ex["input_ids"]))
        print(f"    WX={total['WX']} YZ={total['YZ']} -> O={total['O']}")

    print("\n-- counterfactual examples (0: WX from source, 1: YZ, 2: both) --")
    iid = hierarchical_equality_intervention_id
    cf = model.generate_counterfactual_dataset(6, iid, 2, sampler, seed=2, return_tensors=False)
    for ex in cf:
        i = ex["intervention_id"][0]
        intervened = {0: ["WX"], 1: ["YZ"], 2: ["WX", "YZ"]}[i]
        print(f"intervention {i} on {intervened}")
        print("   " + show("base  ", ex["input_ids"]))
        for var, src in zip(intervened, ex["source_input_ids"]):
            print("   " + show(f"src {var}", src) + f"  ({var}={model.run_forward(src)[var]})")
        print(f"    base O={ex['base_labels']['O']}  counterfactual O={ex['labels']['O']}")

    t0 = time.perf_counter()
    data = model.generate_counterfactual_dataset(100_000, iid, 1024, sampler, seed=3, stacked=True)
    dt = time.perf_counter() - t0
    shapes = {k: tuple(v.shape) for k, v in data.items()}
    print(f"\n100,000 counterfactual examples as tensors in {dt:.1f} s: {shapes}")
    agree = (data["labels"] == data["base_labels"]).float().mean().item()
    print(
        f"label balance {data['labels'].mean().item():.3f}, unchanged by the intervention {agree:.3f}"
    )
    assert torch.all((data["intervention_id"] >= 0) & (data["intervention_id"] <= 2))


if __name__ == "__main__":
    main()
